"""The hierarchical delta rule in JAX: a token scan (fastest on CPU) and a chunkwise-parallel
form (for accelerators), both `lax.scan`s over pure arrays, traceable under `jax.jit`.

Shapes as in `lam.reference`: q, k (B, H, L, Dk); v (B, H, L, Dv); gates (B, H, L);
mask (B, L). The last `num_backward_heads` heads read from the end; the output o
(B, H, L, Dv) is zero at masked positions. Computation follows the inputs' dtype
(float64 under `jax.experimental.enable_x64`).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

FORMS = ("scan", "chunk")
HIGHEST = lax.Precision.HIGHEST


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
        erase = jnp.sum(state * k_t[:, None, :, None], axis=2)
        write = beta_t[:, None, None] * (v_t[:, None, :] - decay_t[..., None] * erase)
        state = decay_t[..., None, None] * state + k_t[:, None, :, None] * write[:, :, None, :]
        query = read_t[..., None] * q_t[:, None, :]
        return state, jnp.sum(state * query[..., None], axis=(1, 2))

    length, pairs, dk = k.shape
    state = jnp.zeros((pairs, decay.shape[-1], dk, v.shape[-1]), v.dtype)
    _, out = lax.scan(step, state, (q, k, v, beta, decay, read), unroll=unroll)
    return out


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
    solve = lambda rhs: lax.linalg.triangular_solve(  # noqa: E731
        system, rhs, left_side=True, lower=True, unit_diagonal=True
    )
    write_v = solve(jnp.broadcast_to(beta[..., None] * v, (pairs, memories, chunks, chunk_size, v.shape[-1])))
    write_k = solve((beta * gamma)[..., None] * k)
    attend = jnp.einsum("nmctd,nmcsd->nmcts", q, k, precision=HIGHEST) * decay_matrix
    q_decayed = gamma[..., None] * q
    k_to_end = jnp.exp(cum[..., -1:] - cum)[..., None] * k
    chunk_decay = gamma[..., -1, None, None]

    def step(state, inputs):
        write_v, write_k, attend, q_decayed, k_to_end, chunk_decay = inputs
        u = write_v - jnp.einsum("nmtd,nmde->nmte", write_k, state, precision=HIGHEST)
        out = jnp.einsum("nmtd,nmde->nmte", q_decayed, state, precision=HIGHEST)
        out = out + jnp.einsum("nmts,nmse->nmte", attend, u, precision=HIGHEST)
        state = chunk_decay * state + jnp.einsum("nmtd,nmte->nmde", k_to_end, u, precision=HIGHEST)
        return state, out

    per_chunk = (write_v, write_k, attend, q_decayed, k_to_end, chunk_decay)
    state = jnp.zeros((pairs, memories, dk, v.shape[-1]), v.dtype)
    _, out = lax.scan(step, state, tuple(jnp.moveaxis(x, 2, 0) for x in per_chunk))
    out = jnp.moveaxis(out, 0, 2).reshape(pairs, memories, length, -1)
    return jnp.sum(read[..., None] * out, axis=1)


def _masked_gates(beta, decay_fast, decay_slow, read_fast, read_slow, mask):
    """beta (B, H, L) and per-memory decay, read (B, H, L, 2), with beta 0 and decay 1 where masked."""
    real = (mask != 0)[:, None, :]
    beta = jnp.where(real, beta, 0)
    decay = jnp.where(real[..., None], jnp.stack([decay_fast, decay_slow], axis=-1), 1)
    return real, beta, decay, jnp.stack([read_fast, read_slow], axis=-1)


def delta_rule_scan(q, k, v, beta, decay_fast, decay_slow, read_fast, read_slow, mask, num_backward_heads,
                    unroll: int = 1):
    """Token-scan form: a `lax.scan` over time, vectorised over batch, heads and both memories."""
    batch, heads, length, _ = k.shape
    real, beta, decay, read = _masked_gates(beta, decay_fast, decay_slow, read_fast, read_slow, mask)

    def time_major(x):
        x = reading_order(x, num_backward_heads)
        return jnp.moveaxis(x, 2, 0).reshape(length, batch * heads, *x.shape[3:])

    out = _token_scan(*(time_major(x) for x in (q, k, v, beta, decay, read)), unroll=max(1, min(unroll, length)))
    out = jnp.moveaxis(out.reshape(length, batch, heads, -1), 0, 2)
    return jnp.where(real[..., None], reading_order(out, num_backward_heads), 0)


def delta_rule_chunked(q, k, v, beta, decay_fast, decay_slow, read_fast, read_slow, mask, num_backward_heads,
                       chunk_size: int = 64):
    """Chunkwise-parallel form: a `lax.scan` over chunks of `chunk_size` tokens."""
    batch, heads, length, _ = k.shape
    real, beta, decay, read = _masked_gates(beta, decay_fast, decay_slow, read_fast, read_slow, mask)
    chunk_size = min(chunk_size, length)
    pad = (-length) % chunk_size

    def pair_major(x):
        x = reading_order(x, num_backward_heads)
        x = jnp.pad(x, [(0, 0), (0, 0), (0, pad)] + [(0, 0)] * (x.ndim - 3))
        return x.reshape(batch * heads, length + pad, *x.shape[3:])

    q, k, v, beta, log_decay, read = (pair_major(x) for x in (q, k, v, beta, jnp.log(decay), read))
    out = _chunked_scan(q, k, v, beta, jnp.moveaxis(log_decay, -1, 1), jnp.moveaxis(read, -1, 1), chunk_size)
    out = out.reshape(batch, heads, length + pad, -1)[:, :, :length]
    return jnp.where(real[..., None], reading_order(out, num_backward_heads), 0)


def delta_rule(form: str, *args, **options):
    """Dispatch to the "scan" or "chunk" form; args as `lam.reference.delta_rule_reference`."""
    if form == "scan":
        return delta_rule_scan(*args, **options)
    if form == "chunk":
        return delta_rule_chunked(*args, **options)
    raise ValueError(f"form must be one of {FORMS}, got {form!r}")
