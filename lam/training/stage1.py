"""Stage 1, attention transfer: every mixer learns its teacher layer's attention-block output."""

from __future__ import annotations

import torch

from .._torch_model import LAMModel
from .data import TextMix
from .teacher import Teacher, TextTokens, pad_token_ids


def attention_transfer_loss(model: LAMModel, teacher: Teacher, input_ids: torch.Tensor,
                            mask: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """Mean over layers of the squared error of mixer(teacher layer input) against the teacher's
    attention output on real tokens, relative to that output's mean square (so layers weigh alike)."""
    real = mask.to(torch.float32)[..., None]
    per_layer = []
    for layer, (layer_input, target) in zip(model.layers, teacher.attention_targets(input_ids, mask)):
        error = ((layer.mixer(layer_input, mask, "chunk") - target) ** 2 * real).sum()
        per_layer.append(error / (target ** 2 * real).sum())
    relative = torch.stack(per_layer)
    return relative.mean(), {f"layer{i}": round(v, 4) for i, v in enumerate(relative.tolist())}


def stage1_loss(model: LAMModel, teacher: Teacher, tokens: TextTokens, mix: TextMix, seed: int,
                batch_size: int, max_tokens: int):
    """step -> (loss, log numbers) on the batch of short texts for that step."""
    def step_loss(step: int):
        texts, _ = mix.batch(seed, step, batch_size)
        input_ids, mask = pad_token_ids(tokens(texts, max_tokens))
        loss, extra = attention_transfer_loss(model, teacher, input_ids, mask)
        return loss, {**extra, "tokens": int(mask.sum())}
    return step_loss
