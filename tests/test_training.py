"""Distillation: each stage lowers its loss, checkpoints resume exactly, batches are deterministic."""

from __future__ import annotations

import pytest
import torch

from lam.teacher import teacher_dir
from lam.training.data import TextMix
from lam.training.loop import LoopSettings, run_loop
from lam.training.stage1 import stage1_loss
from lam.training.stage2 import stage2_loss
from lam.training.student import build_student, set_trainable
from lam.training.teacher import Teacher, TextTokens

SENTENCES = [f"sentence number {i} says a {w} is {c}." for i, (w, c) in
             enumerate((w, c) for w in ("cat", "dog", "car", "tree", "house") for c in ("red", "big", "old", "asleep"))]
PARAGRAPHS = [" ".join(SENTENCES[i:i + 4]) for i in range(0, 16, 2)]
LONG = [" ".join(SENTENCES * 8)]


@pytest.fixture(scope="module")
def mix() -> TextMix:
    return TextMix(SENTENCES, PARAGRAPHS, LONG)


@pytest.fixture(scope="module")
def teacher() -> Teacher:
    return Teacher(teacher_dir())


@pytest.fixture(scope="module")
def tokens() -> TextTokens:
    return TextTokens(teacher_dir() / "tokenizer.json")


def tiny_student():
    torch.manual_seed(0)
    model, _ = build_student(num_hidden_layers=2)
    return model, set_trainable(model, "mixers")


def test_batches_depend_only_on_seed_and_step(mix):
    assert mix.batch(3, 7, 8, long_fraction=0.3) == mix.batch(3, 7, 8, long_fraction=0.3)
    assert mix.batch(3, 7, 8) != mix.batch(3, 8, 8)
    assert mix.batch(3, 7, 8) != mix.batch(4, 7, 8)
    texts, is_long = mix.batch(0, 0, 8, long_fraction=1.0, long_batch_size=2, long_words=(50, 60))
    assert is_long and len(texts) == 2 and all(50 <= len(t.split()) <= 60 for t in texts)


def _loss_drop(model, params, step_loss, tmp_path, steps=6, lr=3e-3):
    first = step_loss(0)[0].item()
    run_loop(model, params, lambda step: step_loss(0), LoopSettings(steps=steps, lr=lr, warmup=1), tmp_path)
    return first, step_loss(0)[0].item()


def test_stage1_reduces_attention_transfer_loss(mix, teacher, tokens, tmp_path):
    model, params = tiny_student()
    before, after = _loss_drop(model, params, stage1_loss(model, teacher, tokens, mix, 0, 4, 24), tmp_path)
    assert after < 0.9 * before


def test_stage2_reduces_embedding_loss(mix, teacher, tokens, tmp_path):
    model, params = tiny_student()
    step_loss = stage2_loss(model, teacher, tokens, mix, 0, 4, 24, 0.0, 2, 64, 1.0)
    before, after = _loss_drop(model, params, step_loss, tmp_path, lr=1e-3)
    assert after < 0.9 * before


def test_resume_after_interruption_matches_uninterrupted_run(mix, teacher, tokens, tmp_path):
    settings = LoopSettings(steps=4, lr=3e-3, warmup=2)

    def run(out, interrupt):
        model, params = tiny_student()
        step_loss = stage2_loss(model, teacher, tokens, mix, 5, 3, 24, 0.5, 1, 96, 1.0)
        if interrupt:
            run_loop(model, params, step_loss, settings, out, stop_at=2)
            model, params = tiny_student()
            step_loss = stage2_loss(model, teacher, tokens, mix, 5, 3, 24, 0.5, 1, 96, 1.0)
        records = run_loop(model, params, step_loss, settings, out, resume=interrupt)
        return model.state_dict(), records[-1]

    straight, straight_last = run(tmp_path / "straight", interrupt=False)
    resumed, resumed_last = run(tmp_path / "resumed", interrupt=True)
    assert resumed_last["step"] == straight_last["step"] == 3
    assert resumed_last["loss"] == straight_last["loss"]
    for name, value in straight.items():
        assert torch.equal(value, resumed[name]), name
