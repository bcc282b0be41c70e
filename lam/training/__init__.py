"""Distilling LAM mixers from a BERT sentence-encoder teacher (`lam distill`, `python -m lam.training`)."""

from .cli import add_distill_command, main

__all__ = ["add_distill_command", "main"]
