"""Training checkpoints: trainable tensors, optimizer, LR schedule, step and RNG, written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import torch

CHECKPOINT_NAME = "checkpoint.pt"


def save_checkpoint(path: Path, model: torch.nn.Module, optimizer, scheduler, step: int) -> None:
    """Write the model's trainable tensors and the run state to `path` (temporary file, then rename)."""
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    state = {
        "model": {k: v.detach().clone() for k, v in model.state_dict().items() if k in trainable},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "step": step,
        "torch_rng": torch.get_rng_state(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    """A checkpoint's state dict (tensors and plain values only; nothing arbitrary is unpickled)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def restore(state: dict, model: torch.nn.Module, optimizer, scheduler) -> int:
    """Put a checkpoint's state back into model, optimizer, schedule and RNG; return its step."""
    model.load_state_dict(state["model"], strict=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    return state["step"]
