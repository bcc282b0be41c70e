"""The hierarchical delta rule in JAX: a token scan (fastest on CPU) and a chunkwise-parallel
form (for accelerators), both `lax.scan`s over pure arrays, traceable under `jax.jit`.

Each form takes a `lam.reference.DeltaRuleInputs` of arrays: q, k (B, H, L, Dk); v (B, H, L, Dv);
gates (B, H, L); mask (B, L). The last `num_backward_heads` heads read from the end; the output o
(B, H, L, Dv) is zero at masked positions. Computation follows the inputs' dtype
(float64 inside `with jax.enable_x64(True)`).
"""

from __future__ import annotations

import os

import jax.numpy as jnp
from jax import lax

from .reference import DeltaRuleInputs

FORMS = ("scan", "chunk")
HIGHEST = lax.Precision.HIGHEST
# The token scan runs (sequence, head) pairs in blocks whose state (both memories) fits in this
# many bytes, so that it stays in a core's L2 cache across the tokens: 24 pairs at d_k = d_v = 32
# in float32. Measured on a 2-core AMD EPYC at B=32, L=64: 10.6 ms at 24 pairs per block, 12 ms
# at 8-16, 22 ms at 32 (where XLA starts splitting the loop over threads), 21 ms unblocked.
STATE_BLOCK_BYTES = 3 << 16
# The blocks run as this many independent `lax.map`s (at most), which XLA:CPU's concurrent
# scheduler runs on different threads; one `lax.map` runs its blocks one after another on one.
# STS-B dev sentences, bfloat16, 2 cores: 12% less time with 2 than with 1, results bit for bit equal.
SCAN_GROUPS = max(1, os.cpu_count() or 1)


def reading_order(x, num_backward_heads: int, time_axis: int = 2):
    """Reverse time for the last `num_backward_heads` heads (axis 1); an involution."""
    if num_backward_heads == 0:
        return x
    split = x.shape[1] - num_backward_heads
    return jnp.concatenate([x[:, :split], jnp.flip(x[:, split:], axis=time_axis)], axis=1)


def _token_scan(q, k, v, beta, decay, read, unroll: int):
    """Forward-reading scan, one token per step, of M memories sharing q, k, v, beta.

    Time-major: q, k (L, N, Dk); v (L, N, Dv); beta (L, N); decay, read (L, N, M).
    The state (N, M, Dk, Dv) updates as S <- a S + k w^T with w = beta (v - a S^T k);
    contractions are written as products and sums so XLA fuses each step into a few loops.
    Returns sum over memories of read * S^T q: (L, N, Dv).
    """

    def step(state, inputs):
        q_t, k_t, v_t, beta_t, decay_t, read_t = inputs
        query = read_t[..., None] * q_t[:, None, :]
        probes = jnp.stack([jnp.broadcast_to(k_t[:, None, :], query.shape), query], axis=2)
        erase, recall = jnp.moveaxis(jnp.sum(state[:, :, None] * probes[..., None], axis=3), 2, 0)
        write = beta_t[:, None, None] * (v_t[:, None, :] - decay_t[..., None] * erase)
        overlap = jnp.sum(query * k_t[:, None, :], axis=-1, keepdims=True)
        out = jnp.sum(decay_t[..., None] * recall + overlap * write, axis=1)
        state = decay_t[..., None, None] * state + k_t[:, None, :, None] * write[:, :, None, :]
        return state, out

    _, pairs, dk = k.shape
    state = jnp.zeros((pairs, decay.shape[-1], dk, v.shape[-1]), v.dtype)
    _, out = lax.scan(step, state, (q, k, v, beta, decay, read), unroll=unroll)
    return out


def unit_lower_inverse(system):
    """Inverse of unit lower-triangular matrices (..., C, C), C a power of two.

    Block doubling: with the inverses X1, X2 of two adjacent diagonal blocks and L21 the block
    below the first, [[L11, 0], [L21, L22]]^-1 = [[X1, 0], [-X2 L21 X1, X2]]. log2(C) levels of
    batched matmuls (a static recursion over block sizes), exact like forward substitution, and
    unlike XLA's triangular-solve expansion fast to compile and run on CPU.
    """
    *batch, size, _ = system.shape
    if size & (size - 1):
        raise ValueError(f"the chunk size must be a power of two, got {size}")
    inverse = jnp.ones((*batch, size, 1, 1), system.dtype)
    block = 1
    while block < size:
        count = size // (2 * block)
        pairs_of_blocks = system.reshape(*batch, count, 2 * block, count, 2 * block)
        diagonal = jnp.moveaxis(jnp.diagonal(pairs_of_blocks, axis1=-4, axis2=-2), -1, -3)
        below = diagonal[..., block:, :block]
        pairs_of_inverses = inverse.reshape(*batch, count, 2, block, block)
        first, second = pairs_of_inverses[..., 0, :, :], pairs_of_inverses[..., 1, :, :]
        corner = -jnp.matmul(second, jnp.matmul(below, first, precision=HIGHEST), precision=HIGHEST)
        top = jnp.concatenate([first, jnp.zeros_like(first)], axis=-1)
        inverse = jnp.concatenate([top, jnp.concatenate([corner, second], axis=-1)], axis=-2)
        block *= 2
    return inverse[..., 0, :, :]


def _chunked_scan(q, k, v, beta, log_decay, read, chunk_size: int):
    """Forward-reading chunkwise scan of M memories sharing q, k, v, beta.

    q, k (N, L, Dk); v (N, L, Dv); beta (N, L); log_decay, read (N, M, L), L a multiple
    of `chunk_size`. Within a chunk of C tokens the writes u solve (I + A) u = beta (v - gamma K S0),
    A[t, s] = beta_t (gamma_t / gamma_s) k_t.k_s for s < t (the WY/UT transform); a `lax.scan`
    over chunks carries S (N, M, Dk, Dv). Returns sum over memories of read * S^T q: (N, L, Dv).
    """
    pairs, length, dk = k.shape
    memories = log_decay.shape[1]
    chunks = length // chunk_size
    q, k, v = (x.reshape(pairs, 1, chunks, chunk_size, -1) for x in (q, k, v))
    beta = beta.reshape(pairs, 1, chunks, chunk_size)
    cum = jnp.cumsum(log_decay.reshape(pairs, memories, chunks, chunk_size), axis=-1)

    causal = jnp.tril(jnp.ones((chunk_size, chunk_size), bool))
    decay_matrix = jnp.exp(jnp.where(causal, cum[..., :, None] - cum[..., None, :], -jnp.inf))
    strict = jnp.tril(decay_matrix, -1)
    kk = jnp.einsum("nmctd,nmcsd->nmcts", k, k, precision=HIGHEST)
    system = beta[..., :, None] * strict * kk + jnp.eye(chunk_size, dtype=k.dtype)
    gamma = jnp.exp(cum)
    inverse = unit_lower_inverse(system)
    write_v = jnp.einsum("nmcts,ncsd->nmctd", inverse, (beta[..., None] * v)[:, 0], precision=HIGHEST)
    write_k = jnp.einsum("nmcts,nmcsd->nmctd", inverse, (beta * gamma)[..., None] * k, precision=HIGHEST)
    # The read weights scale each memory's read-out rows, so the sum over memories is a
    # contraction inside the read-out matmuls. (A separate sum after the scan was miscompiled
    # by jaxlib 0.10.2's XLA:CPU, YNNPACK fusion, when the scan had one chunk: garbage output.)
    read = read.reshape(pairs, memories, chunks, chunk_size)
    attend = read[..., None] * jnp.einsum("nmctd,nmcsd->nmcts", q, k, precision=HIGHEST) * decay_matrix
    q_decayed = (read * gamma)[..., None] * q
    k_to_end = jnp.exp(cum[..., -1:] - cum)[..., None] * k
    chunk_decay = gamma[..., -1, None, None]

    def step(state, inputs):
        write_v, write_k, attend, q_decayed, k_to_end, chunk_decay = inputs
        u = write_v - jnp.einsum("nmtd,nmde->nmte", write_k, state, precision=HIGHEST)
        out = jnp.einsum("nmtd,nmde->nte", q_decayed, state, precision=HIGHEST)
        out = out + jnp.einsum("nmts,nmse->nte", attend, u, precision=HIGHEST)
        state = chunk_decay * state + jnp.einsum("nmtd,nmte->nmde", k_to_end, u, precision=HIGHEST)
        return state, out

    per_chunk = (write_v, write_k, attend, q_decayed, k_to_end, chunk_decay)
    state = jnp.zeros((pairs, memories, dk, v.shape[-1]), v.dtype)
    _, out = lax.scan(step, state, tuple(jnp.moveaxis(x, 2, 0) for x in per_chunk))
    return jnp.moveaxis(out, 0, 1).reshape(pairs, length, -1)


def _masked_gates(inputs: DeltaRuleInputs):
    """real (B, 1, L), beta (B, H, L) and per-memory decay, read (B, H, L, 2), with beta 0 and decay 1
    where masked."""
    beta, decay_fast, decay_slow, read_fast, read_slow = inputs.gates()
    real = (inputs.mask != 0)[:, None, :]
    beta = jnp.where(real, beta, 0)
    decay = jnp.where(real[..., None], jnp.stack([decay_fast, decay_slow], axis=-1), 1)
    return real, beta, decay, jnp.stack([read_fast, read_slow], axis=-1)


def independent_maps(fn, xs: tuple, groups: int):
    """`lax.map(fn, xs)` as up to `groups` maps over consecutive runs of the leading axis, joined."""
    count = xs[0].shape[0]
    edges = sorted({round(count * i / groups) for i in range(groups + 1)})
    outputs = [lax.map(fn, tuple(x[start:stop] for x in xs)) for start, stop in zip(edges[:-1], edges[1:])]
    return outputs[0] if len(outputs) == 1 else jnp.concatenate(outputs, axis=0)


def delta_rule_scan(inputs: DeltaRuleInputs, num_backward_heads: int, unroll: int = 1, block_pairs: int | None = None):
    """Token-scan form: a `lax.scan` over time, vectorised over (sequence, head) pairs and both memories.

    Pairs run in blocks of `block_pairs` (`lax.map` over blocks, each scanned over all tokens) so
    that a block's state stays in cache; default: as many as fit in STATE_BLOCK_BYTES. The blocks
    are shared among up to SCAN_GROUPS independent maps.
    """
    q, k, v = inputs.q, inputs.k, inputs.v
    batch, heads, length, dk = k.shape
    real, beta, decay, read = _masked_gates(inputs)
    pairs = batch * heads
    if block_pairs is None:
        block_pairs = max(1, STATE_BLOCK_BYTES // (decay.shape[-1] * dk * v.shape[-1] * v.dtype.itemsize))
    blocks = -(-pairs // block_pairs)
    block_pairs = -(-pairs // blocks)

    def blocked_time_major(x):
        x = reading_order(x, num_backward_heads).reshape(pairs, length, *x.shape[3:])
        x = jnp.pad(x, [(0, blocks * block_pairs - pairs)] + [(0, 0)] * (x.ndim - 1))
        return jnp.swapaxes(x.reshape(blocks, block_pairs, length, *x.shape[2:]), 1, 2)

    unroll = max(1, min(unroll, length))
    out = independent_maps(lambda block: _token_scan(*block, unroll=unroll),
                           tuple(blocked_time_major(x) for x in (q, k, v, beta, decay, read)), SCAN_GROUPS)
    out = jnp.swapaxes(out, 1, 2).reshape(blocks * block_pairs, length, -1)[:pairs]
    out = reading_order(out.reshape(batch, heads, length, -1), num_backward_heads)
    return jnp.where(real[..., None], out, 0)


def delta_rule_chunked(inputs: DeltaRuleInputs, num_backward_heads: int, chunk_size: int = 64):
    """Chunkwise-parallel form: a `lax.scan` over chunks of `chunk_size` tokens."""
    batch, heads, length, _ = inputs.k.shape
    real, beta, decay, read = _masked_gates(inputs)
    chunk_size = min(chunk_size, 1 << (length - 1).bit_length())
    pad = (-length) % chunk_size

    def pair_major(x):
        x = reading_order(x, num_backward_heads)
        x = jnp.pad(x, [(0, 0), (0, 0), (0, pad)] + [(0, 0)] * (x.ndim - 3))
        return x.reshape(batch * heads, length + pad, *x.shape[3:])

    q, k, v, beta, log_decay, read = (pair_major(x) for x in (*inputs[:3], beta, jnp.log(decay), read))
    out = _chunked_scan(q, k, v, beta, jnp.moveaxis(log_decay, -1, 1), jnp.moveaxis(read, -1, 1), chunk_size)
    out = out.reshape(batch, heads, length + pad, -1)[:, :, :length]
    return jnp.where(real[..., None], reading_order(out, num_backward_heads), 0)


def delta_rule(form: str, inputs: DeltaRuleInputs, num_backward_heads: int, **options):
    """Dispatch to the "scan" or "chunk" form; options go to the form (unroll, block_pairs; chunk_size)."""
    forms = {"scan": delta_rule_scan, "chunk": delta_rule_chunked}
    if form not in forms:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    return forms[form](inputs, num_backward_heads, **options)
