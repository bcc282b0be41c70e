"""The shared optimisation loop: AdamW, warm-up then cosine decay, tqdm, JSON-lines log, checkpoints."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from .checkpoint import CHECKPOINT_NAME, load_checkpoint, restore, save_checkpoint


@dataclass
class LoopSettings:
    steps: int
    lr: float
    warmup: int = 50
    weight_decay: float = 0.01
    clip: float = 1.0
    checkpoint_minutes: float = 3.0
    log_every: int = 10


def warmup_cosine(warmup: int, steps: int) -> Callable[[int], float]:
    """LR multiplier: linear warm-up over `warmup` steps, then cosine decay to 0 at `steps`."""
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, steps - warmup))))
    return factor


def run_loop(model: torch.nn.Module, params: list[torch.nn.Parameter], step_loss: Callable[[int], tuple[torch.Tensor, dict]],
             settings: LoopSettings, out_dir: Path, resume: bool = False, stop_at: int | None = None,
             description: str = "train") -> list[dict]:
    """Minimise step_loss(step) for steps [start, settings.steps) and return the log records.

    step_loss returns (loss, extra numbers to log). With `resume`, the state of out_dir's
    checkpoint is restored first; a checkpoint is written every `checkpoint_minutes` and at the
    end. `stop_at` ends the run early (as an interruption would) after that step.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(settings.warmup, settings.steps))
    checkpoint = out_dir / CHECKPOINT_NAME
    start = restore(load_checkpoint(checkpoint), model, optimizer, scheduler) if resume and checkpoint.is_file() else 0
    end = settings.steps if stop_at is None else min(settings.steps, stop_at)
    records, last_save = [], time.monotonic()
    model.train()
    with open(out_dir / "log.jsonl", "a") as log, tqdm(range(start, end), desc=description, initial=start,
                                                        total=settings.steps, mininterval=5) as bar:
        for step in bar:
            began = time.monotonic()
            loss, extra = step_loss(step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, settings.clip)
            optimizer.step()
            scheduler.step()
            record = {"step": step, "loss": loss.item(), "lr": scheduler.get_last_lr()[0],
                      "seconds": round(time.monotonic() - began, 3), **extra}
            records.append(record)
            bar.set_postfix(loss=f"{record['loss']:.4g}")
            if step % settings.log_every == 0 or step == end - 1:
                log.write(json.dumps(record) + "\n")
                log.flush()
            if time.monotonic() - last_save > 60 * settings.checkpoint_minutes:
                save_checkpoint(checkpoint, model, optimizer, scheduler, step + 1)
                last_save = time.monotonic()
    save_checkpoint(checkpoint, model, optimizer, scheduler, end)
    return records
