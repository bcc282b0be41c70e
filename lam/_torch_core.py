"""The hierarchical delta rule in PyTorch: a chunkwise-parallel form with autograd, and
dispatch to the compiled Cython token scan or the float64 reference.

Shapes as in `lam.reference`: q, k, v (B, H, L, D); gates (B, H, L); mask (B, L).
"""

from __future__ import annotations

import numpy as np
import torch

from .reference import delta_rule_reference

KERNELS = ("auto", "cython", "chunk", "reference")


def reading_order(x: torch.Tensor, num_backward_heads: int, time_dim: int = 2) -> torch.Tensor:
    """Reverse time for the last `num_backward_heads` heads (dim 1); an involution."""
    if num_backward_heads == 0:
        return x
    split = x.shape[1] - num_backward_heads
    return torch.cat([x[:, :split], x[:, split:].flip(time_dim)], dim=1)


def _chunked_scan(q, k, v, beta, log_decay, read, chunk_size):
    """Forward-reading scan of M memories sharing q, k, v, beta.

    q, k, v: (B, H, L, D); beta: (B, H, L); log_decay, read: (B, H, M, L).
    Within a chunk of C tokens the delta-rule writes u solve (I + A) u = beta (v - gamma K S0),
    A[t, s] = beta_t (gamma_t / gamma_s) k_t.k_s for s < t (the WY/UT transform); S is
    carried across chunks. Returns sum over memories of read * S^T q: (B, H, L, D).
    """
    batch, heads, length, dk = k.shape
    dv = v.shape[-1]
    memories = log_decay.shape[2]
    pad = (-length) % chunk_size
    if pad:
        q, k, v = (torch.nn.functional.pad(x, (0, 0, 0, pad)) for x in (q, k, v))
        beta, log_decay, read = (torch.nn.functional.pad(x, (0, pad)) for x in (beta, log_decay, read))
    chunks = (length + pad) // chunk_size
    shape = (batch, heads, 1, chunks, chunk_size)
    q, k, v = q.reshape(*shape, dk), k.reshape(*shape, dk), v.reshape(*shape, dv)
    beta = beta.reshape(shape)
    cum = log_decay.reshape(batch, heads, memories, chunks, chunk_size).cumsum(-1)

    causal = torch.ones(chunk_size, chunk_size, dtype=torch.bool, device=k.device).tril()
    decay_matrix = torch.exp((cum[..., :, None] - cum[..., None, :]).masked_fill(~causal, float("-inf")))
    strict = decay_matrix.tril(-1)
    system = beta[..., :, None] * strict * (k @ k.transpose(-1, -2))
    system = system + torch.eye(chunk_size, dtype=k.dtype, device=k.device)
    gamma = cum.exp()
    write_v = torch.linalg.solve_triangular(
        system, (beta[..., None] * v).expand(-1, -1, memories, -1, -1, -1), upper=False, unitriangular=True
    )
    write_k = torch.linalg.solve_triangular(system, (beta * gamma)[..., None] * k, upper=False, unitriangular=True)
    attend = (q @ k.transpose(-1, -2)) * decay_matrix
    q_decayed = gamma[..., None] * q
    k_to_end = torch.exp(cum[..., -1:] - cum)[..., None] * k
    chunk_decay = gamma[..., -1, None, None]

    state = k.new_zeros(batch, heads, memories, dk, dv)
    outputs = []
    for n in range(chunks):
        u = write_v[:, :, :, n] - write_k[:, :, :, n] @ state
        outputs.append(q_decayed[:, :, :, n] @ state + attend[:, :, :, n] @ u)
        state = chunk_decay[:, :, :, n] * state + k_to_end[:, :, :, n].transpose(-1, -2) @ u
    out = torch.stack(outputs, dim=3).reshape(batch, heads, memories, chunks * chunk_size, dv)[..., :length, :]
    return (read[..., :length, None] * out).sum(2)


def delta_rule_chunked(q, k, v, beta, decay_fast, decay_slow, read_fast, read_slow, mask, num_backward_heads, chunk_size=64):
    """Chunkwise-parallel form (differentiable); returns o (B, H, L, D), zero where masked."""
    heads = k.shape[1]
    real = mask.to(k.dtype)[:, None, :].expand(-1, heads, -1)
    beta = beta * real
    log_decay = torch.stack([torch.log(decay_fast), torch.log(decay_slow)], dim=2) * real[:, :, None]
    read = torch.stack([read_fast, read_slow], dim=2)

    out = _chunked_scan(
        *(reading_order(x, num_backward_heads) for x in (q, k, v, beta)),
        reading_order(log_decay, num_backward_heads, time_dim=3),
        reading_order(read, num_backward_heads, time_dim=3),
        chunk_size,
    )
    return reading_order(out, num_backward_heads) * real[..., None]
