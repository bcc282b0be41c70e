"""Stage 2, end to end: the student's sentence embeddings learn the teacher's."""

from __future__ import annotations

import torch

from .._torch_model import LAMModel
from .data import TextMix
from .teacher import Teacher, TextTokens, pad_token_ids


def embedding_loss(student: torch.Tensor, target: torch.Tensor, similarity_weight: float) -> tuple[torch.Tensor, dict]:
    """1 - cosine of normalised (B, d) embeddings, plus `similarity_weight` times the squared
    error between the batch's student and teacher cosine-similarity matrices."""
    cosine = (student * target).sum(-1)
    similarity = ((student @ student.T - target @ target.T) ** 2).mean()
    loss = (1 - cosine).mean() + similarity_weight * similarity
    return loss, {"cosine": round(cosine.mean().item(), 5), "similarity_mse": round(similarity.item(), 6)}


def stage2_loss(model: LAMModel, teacher: Teacher, tokens: TextTokens, mix: TextMix, seed: int, batch_size: int,
                max_tokens: int, long_fraction: float, long_batch_size: int, max_long_tokens: int,
                similarity_weight: float):
    """step -> (loss, log numbers) on that step's batch of short texts or long passages."""
    def step_loss(step: int):
        texts, is_long = mix.batch(seed, step, batch_size, long_fraction=long_fraction, long_batch_size=long_batch_size)
        ids = tokens(texts, max_long_tokens if is_long else max_tokens)
        target = teacher.targets(ids)
        input_ids, mask = pad_token_ids(ids)
        student = model.embed(input_ids, mask)
        loss, extra = embedding_loss(student, target, similarity_weight)
        return loss, {**extra, "tokens": int(mask.sum())}
    return step_loss
