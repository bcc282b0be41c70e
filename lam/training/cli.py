"""`lam distill`: stage 1 (attention transfer), stage 2 (end to end), stage 3 (long documents) and export.

Only the parser lives here; each command's work is imported from `.runs` when it runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .scopes import TRAINABLE_SCOPES


def _deferred(name: str):
    """A command function that imports `.runs` (torch and the training code) only when called."""
    def run(args):
        from . import runs

        return getattr(runs, name)(args)

    return run


def _common(parser: argparse.ArgumentParser, steps: int, lr: float) -> None:
    """Options of both stages; defaults are the LAM-base-v1 recipe (see its model card)."""
    parser.add_argument("--out", type=Path, required=True, help="run directory (checkpoint, log.jsonl, run.json)")
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--lr", type=float, default=lr)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=128, help="truncation of short texts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="development data (default: $LAM_DATA_DIR, else shared/data beside the checkout)")
    parser.add_argument("--checkpoint-minutes", type=float, default=3.0)
    parser.add_argument("--resume", action="store_true", help="continue from --out's checkpoint")
    parser.add_argument("--stop-at", type=int, default=None, help="end after this step, as an interruption would")


def add_distill_command(subparsers) -> argparse.ArgumentParser:
    """Add `distill` (with stage1, stage2 and export) to an argparse subparsers object."""
    distill = subparsers.add_parser("distill", help="distil LAM mixers from the teacher")
    stages = distill.add_subparsers(dest="distill_command", required=True)

    stage1 = stages.add_parser("stage1", help="attention transfer: mixers reproduce the teacher's attention outputs")
    _common(stage1, steps=300, lr=2e-3)
    stage1.set_defaults(func=_deferred("run_stage1"))

    stage2 = stages.add_parser("stage2", help="end to end on the teacher's sentence embeddings")
    _common(stage2, steps=380, lr=5e-4)
    stage2.add_argument("--init", type=Path, required=True, help="stage-1 (or stage-2) run directory to start from")
    stage2.add_argument("--position-policy", choices=("clamp", "none"), default="none")
    stage2.add_argument("--scope", choices=TRAINABLE_SCOPES, default="mixers")
    stage2.add_argument("--long-fraction", type=float, default=0.15, help="share of batches that are long passages")
    stage2.add_argument("--long-batch-size", type=int, default=1)
    stage2.add_argument("--max-long-tokens", type=int, default=2048)
    stage2.add_argument("--similarity-weight", type=float, default=1.0)
    stage2.set_defaults(func=_deferred("run_stage2"))

    features = stages.add_parser("features", help="cache the last feed-forward input of long documents, their "
                                                   "known-item queries and short texts (for stage 3)")
    features.add_argument("--out", type=Path, required=True, help="feature directory")
    features.add_argument("--init", default="LAM-base-v1", help="run directory or built-in model name")
    features.add_argument("--split", choices=("train", "validation"), default="train")
    features.add_argument("--books", type=int, default=None, help="Gutenberg books (default: all of the split)")
    features.add_argument("--articles", type=int, default=400, help="Wikipedia articles (of >= --min-article-words)")
    features.add_argument("--min-article-words", type=int, default=1000)
    features.add_argument("--max-document-tokens", type=int, default=16384)
    features.add_argument("--queries-per-band", default="4,6,8,10",
                          help="known-item queries per document in each depth band (0-1k, 1k-4k, 4k-16k, 16k-32k)")
    features.add_argument("--short-texts", type=int, default=6400, help="short texts with teacher targets (0: none)")
    features.add_argument("--max-tokens", type=int, default=128, help="truncation of short texts")
    features.add_argument("--seed", type=int, default=11)
    features.add_argument("--threads", type=int, default=None)
    features.add_argument("--data-dir", type=Path, default=None, help="default: $LAM_DATA_DIR, else ../shared/data")
    features.set_defaults(func=_deferred("run_features"))

    stage3 = stages.add_parser("stage3", help="long documents: retrain the last feed-forward block on cached "
                                              "features so passages find their document; short texts keep "
                                              "the teacher's embeddings")
    _common(stage3, steps=400, lr=1e-4)
    stage3.add_argument("--init", default="LAM-base-v1", help="run directory or built-in model name to start from")
    stage3.add_argument("--features", type=Path, required=True, help="`lam distill features` directory (train)")
    stage3.add_argument("--validation", type=Path, default=None,
                        help="`lam distill features --split validation` directory, scored at the end")
    stage3.add_argument("--short-batch-size", type=int, default=32)
    stage3.add_argument("--sample-tokens", type=int, default=1024, help="tokens sampled from each document view")
    stage3.add_argument("--window-fraction", type=float, default=0.5,
                        help="share of document views that are a random window instead of the whole document")
    stage3.add_argument("--temperature", type=float, default=0.05)
    stage3.add_argument("--distill-weight", type=float, default=1.0)
    stage3.add_argument("--similarity-weight", type=float, default=1.0)
    stage3.set_defaults(func=_deferred("run_stage3"), batch_size=32)

    export = stages.add_parser("export", help="write the shipped safetensors file from a stage-2 or stage-3 run")
    export.add_argument("--run", type=Path, required=True, help="stage-2 run directory")
    export.add_argument("--out", type=Path, required=True)
    export.add_argument("--dtype", choices=("float16", "float32"), default="float16")
    export.add_argument("--threads", type=int, default=None)
    export.set_defaults(func=_deferred("run_export"))
    return distill


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lam.training")
    add_distill_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["distill", *(sys.argv[1:] if argv is None else argv)])
    args.func(args)
