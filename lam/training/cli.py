"""`lam distill`: stage 1 (attention transfer), stage 2 (end to end) and export of LAM-base-v1."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from ..teacher import teacher_dir
from .checkpoint import CHECKPOINT_NAME, load_checkpoint
from .data import DEFAULT_DATA_DIR, TextMix
from .evaluation import evaluate_student, student_stsb_spearman
from .export import ship, with_tensors
from .loop import LoopSettings, run_loop
from .stage1 import stage1_loss
from .stage2 import stage2_loss
from .student import TRAINABLE_SCOPES, build_student, load_tensors, set_trainable
from .teacher import Teacher, TextTokens

RUN_FILE = "run.json"


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
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--checkpoint-minutes", type=float, default=3.0)
    parser.add_argument("--resume", action="store_true", help="continue from --out's checkpoint")
    parser.add_argument("--stop-at", type=int, default=None, help="end after this step, as an interruption would")


def add_distill_command(subparsers) -> argparse.ArgumentParser:
    """Add `distill` (with stage1, stage2 and export) to an argparse subparsers object."""
    distill = subparsers.add_parser("distill", help="distil LAM mixers from the teacher")
    stages = distill.add_subparsers(dest="distill_command", required=True)

    stage1 = stages.add_parser("stage1", help="attention transfer: mixers reproduce the teacher's attention outputs")
    _common(stage1, steps=300, lr=2e-3)
    stage1.set_defaults(func=run_stage1)

    stage2 = stages.add_parser("stage2", help="end to end on the teacher's sentence embeddings")
    _common(stage2, steps=380, lr=5e-4)
    stage2.add_argument("--init", type=Path, required=True, help="stage-1 (or stage-2) run directory to start from")
    stage2.add_argument("--position-policy", choices=("clamp", "none"), default="none")
    stage2.add_argument("--scope", choices=TRAINABLE_SCOPES, default="mixers")
    stage2.add_argument("--long-fraction", type=float, default=0.15, help="share of batches that are long passages")
    stage2.add_argument("--long-batch-size", type=int, default=1)
    stage2.add_argument("--max-long-tokens", type=int, default=2048)
    stage2.add_argument("--similarity-weight", type=float, default=1.0)
    stage2.set_defaults(func=run_stage2)

    export = stages.add_parser("export", help="write the shipped safetensors file from a stage-2 run")
    export.add_argument("--run", type=Path, required=True, help="stage-2 run directory")
    export.add_argument("--out", type=Path, required=True)
    export.add_argument("--dtype", choices=("float16", "float32"), default="float16")
    export.add_argument("--threads", type=int, default=None)
    export.set_defaults(func=run_export)
    return distill


def _settings(args) -> LoopSettings:
    return LoopSettings(steps=args.steps, lr=args.lr, warmup=args.warmup, checkpoint_minutes=args.checkpoint_minutes)


def _record_run(args, **extra) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    fields = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "func"}
    (args.out / RUN_FILE).write_text(json.dumps({**fields, **extra}, indent=2))


def _set_threads(args) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)


def run_stage1(args) -> None:
    _set_threads(args)
    torch.manual_seed(args.seed)
    model, _ = build_student(seed=args.seed)
    params = set_trainable(model, "mixers")
    teacher = Teacher(teacher_dir())
    tokens = TextTokens(teacher_dir() / "tokenizer.json")
    step_loss = stage1_loss(model, teacher, tokens, TextMix.load(args.data_dir), args.seed, args.batch_size, args.max_tokens)
    _record_run(args, position_policy="clamp")
    run_loop(model, params, step_loss, _settings(args), args.out, resume=args.resume, stop_at=args.stop_at,
             description="stage1")


def run_stage2(args) -> None:
    _set_threads(args)
    torch.manual_seed(args.seed)
    model, _ = build_student(position_policy=args.position_policy, seed=args.seed)
    load_tensors(model, load_checkpoint(args.init / CHECKPOINT_NAME)["model"])
    params = set_trainable(model, args.scope)
    teacher = Teacher(teacher_dir())
    tokens = TextTokens(teacher_dir() / "tokenizer.json")
    step_loss = stage2_loss(model, teacher, tokens, TextMix.load(args.data_dir), args.seed, args.batch_size,
                            args.max_tokens, args.long_fraction, args.long_batch_size, args.max_long_tokens,
                            args.similarity_weight)
    _record_run(args)
    run_loop(model, params, step_loss, _settings(args), args.out, resume=args.resume, stop_at=args.stop_at,
             description="stage2")
    scores = evaluate_student(model, teacher, tokens)
    print(json.dumps(scores))
    (args.out / "eval.json").write_text(json.dumps(scores, indent=2))


def run_export(args) -> None:
    _set_threads(args)
    run = json.loads((args.run / RUN_FILE).read_text())
    model, _ = build_student(position_policy=run["position_policy"], seed=run["seed"])
    load_tensors(model, load_checkpoint(args.run / CHECKPOINT_NAME)["model"])
    tokens = TextTokens(teacher_dir() / "tokenizer.json")
    full = student_stsb_spearman(model, tokens)
    shipped = ship(model, args.out, {"position_policy": run["position_policy"]}, args.dtype)
    stored = student_stsb_spearman(with_tensors(model, shipped), tokens)
    size_mb = args.out.stat().st_size / 1e6
    print(json.dumps({"tensors": len(shipped), "megabytes": round(size_mb, 2), "spearman_float32": full,
                      f"spearman_{args.dtype}": stored, "difference": abs(full - stored)}, indent=2))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lam.training")
    add_distill_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["distill", *(sys.argv[1:] if argv is None else argv)])
    args.func(args)
