# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled token scan of the hierarchical delta rule (SPEC §2.5-2.6, §3) for CPU inference.

One pass over the tokens per (sequence, head) pair, both memories' states (dk x dv each)
kept in a per-thread buffer that stays in L1 cache; pairs run in parallel with OpenMP.
Contract and shapes as in `lam.reference`, in float32.
"""

import numpy as np

from cython.parallel cimport prange, threadid
from libc.string cimport memset

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int lam_max_threads(void) { return omp_get_max_threads(); }
    #define LAM_HAS_OPENMP 1
    #else
    static int lam_max_threads(void) { return 1; }
    #define LAM_HAS_OPENMP 0
    #endif
    """
    int lam_max_threads() noexcept nogil
    bint LAM_HAS_OPENMP

HAS_OPENMP = bool(LAM_HAS_OPENMP)

# Per-thread state buffers are a whole number of 64-byte cache lines apart, plus one line of
# slack, so that two threads never write to the same line whatever the alignment.
cdef Py_ssize_t CACHE_LINE_FLOATS = 16


cdef enum:
    # Columns of the state updated together. Every column of S evolves independently given
    # k and q, so a block's accumulators can live in vector registers across the dk rows,
    # and a compile-time width lets the compiler unroll the column loops completely. 32 is
    # the model's head width: 8 SSE, 4 AVX2 or 2 AVX-512 vectors per memory. Other value
    # widths are zero-padded to whole blocks.
    COLUMN_BLOCK = 32


cdef inline void update_columns(
    float* state_fast, float* state_slow, const float* k_t, const float* q_t, const float* v_t,
    float* o_t, float b, float a_fast, float a_slow, float read_fast, float read_slow,
    Py_ssize_t dk, Py_ssize_t row_stride,
) noexcept nogil:
    """One token's update and read-out of one block of COLUMN_BLOCK columns of both states.

    state_*: (dk, row_stride) from the block's first column; v_t, o_t: the block's columns.
    """
    cdef float erase_fast[COLUMN_BLOCK]
    cdef float erase_slow[COLUMN_BLOCK]
    cdef float write_fast[COLUMN_BLOCK]
    cdef float write_slow[COLUMN_BLOCK]
    cdef float read_out[COLUMN_BLOCK]
    cdef float k_i, q_fast_i, q_slow_i
    cdef float* row_fast
    cdef float* row_slow
    cdef Py_ssize_t i, j

    # u = S^T k, as an axpy over rows so that the inner loop vectorises over columns.
    for j in range(COLUMN_BLOCK):
        erase_fast[j] = 0.0
        erase_slow[j] = 0.0
    for i in range(dk):
        k_i = k_t[i]
        row_fast = state_fast + i * row_stride
        row_slow = state_slow + i * row_stride
        for j in range(COLUMN_BLOCK):
            erase_fast[j] += k_i * row_fast[j]
            erase_slow[j] += k_i * row_slow[j]

    # w = beta (v - a u);  S <- a S + k w^T;  o = lambda^f (S^f)^T q + lambda^s (S^s)^T q.
    for j in range(COLUMN_BLOCK):
        write_fast[j] = b * (v_t[j] - a_fast * erase_fast[j])
        write_slow[j] = b * (v_t[j] - a_slow * erase_slow[j])
        read_out[j] = 0.0
    for i in range(dk):
        k_i = k_t[i]
        q_fast_i = read_fast * q_t[i]
        q_slow_i = read_slow * q_t[i]
        row_fast = state_fast + i * row_stride
        row_slow = state_slow + i * row_stride
        for j in range(COLUMN_BLOCK):
            row_fast[j] = a_fast * row_fast[j] + k_i * write_fast[j]
            row_slow[j] = a_slow * row_slow[j] + k_i * write_slow[j]
            read_out[j] += q_fast_i * row_fast[j] + q_slow_i * row_slow[j]
    for j in range(COLUMN_BLOCK):
        o_t[j] = read_out[j]


cdef inline void scan_pair(
    const float* q, const float* k, const float* v, const float* beta,
    const float* decay_fast, const float* decay_slow, const float* read_fast, const float* read_slow,
    const unsigned char* mask, float* out, Py_ssize_t length, Py_ssize_t dk, Py_ssize_t dv,
    bint backward, float* state,
) noexcept nogil:
    """Scan one (sequence, head) pair. q, k: (L, dk); v, out: (L, dv); gates, mask: (L,).

    dv is a multiple of COLUMN_BLOCK; `out` must be zero on entry (masked tokens are
    skipped); `state` holds 2*dk*dv floats.
    """
    cdef float* state_fast = state
    cdef float* state_slow = state + dk * dv
    cdef Py_ssize_t step, t, block, column

    memset(state, 0, 2 * dk * dv * sizeof(float))
    for step in range(length):
        t = length - 1 - step if backward else step
        if not mask[t]:
            continue
        for block in range(dv // COLUMN_BLOCK):
            column = block * COLUMN_BLOCK
            update_columns(
                state_fast + column, state_slow + column, k + t * dk, q + t * dk, v + t * dv + column,
                out + t * dv + column, beta[t], decay_fast[t], decay_slow[t], read_fast[t], read_slow[t],
                dk, dv,
            )


def _check(name, array, dtype, shape):
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(array).__name__}")
    if array.dtype != dtype:
        raise ValueError(f"{name} must have dtype {np.dtype(dtype).name}, got {array.dtype}")
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {array.shape}")
    if not array.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")


def delta_rule_forward(q, k, v, beta, decay_fast, decay_slow, read_fast, read_slow, mask,
                       int num_backward_heads, int num_threads=0):
    """Hierarchical delta rule, token scan in float32; returns o (B, H, L, dv), zero where masked.

    q, k: float32 (B, H, L, dk); v: float32 (B, H, L, dv); beta, decay_fast, decay_slow,
    read_fast, read_slow: float32 (B, H, L); mask: uint8 (B, L), nonzero for real tokens.
    All C-contiguous. The last `num_backward_heads` heads scan from the end.
    num_threads: OpenMP threads over the (sequence, head) pairs; 0 for the OpenMP default.
    """
    if not isinstance(q, np.ndarray) or q.ndim != 4:
        raise ValueError(f"q must be a 4-d numpy array (B, H, L, dk), got {getattr(q, 'shape', type(q))}")
    batch, heads, length, dk = q.shape
    _check("q", q, np.float32, (batch, heads, length, dk))
    _check("k", k, np.float32, (batch, heads, length, dk))
    if not isinstance(v, np.ndarray) or v.ndim != 4:
        raise ValueError(f"v must be a 4-d numpy array (B, H, L, dv), got {getattr(v, 'shape', type(v))}")
    dv = v.shape[3]
    _check("v", v, np.float32, (batch, heads, length, dv))
    gates = {"beta": beta, "decay_fast": decay_fast, "decay_slow": decay_slow,
             "read_fast": read_fast, "read_slow": read_slow}
    for name, gate in gates.items():
        _check(name, gate, np.float32, (batch, heads, length))
    _check("mask", mask, np.uint8, (batch, length))
    if not 0 <= num_backward_heads <= heads:
        raise ValueError(f"num_backward_heads must be in [0, {heads}], got {num_backward_heads}")
    if num_threads < 0:
        raise ValueError(f"num_threads must be >= 0, got {num_threads}")

    # Zero columns of v keep zero state columns and give zero outputs, so padding dv to whole
    # column blocks changes nothing but lets every block have the compile-time width.
    padded_dv = dv + (-dv) % COLUMN_BLOCK
    if padded_dv != dv:
        v = np.pad(v, ((0, 0), (0, 0), (0, 0), (0, padded_dv - dv)))
    out = np.zeros((batch, heads, length, padded_dv), dtype=np.float32)
    if out.size == 0 or dk == 0:
        return np.ascontiguousarray(out[..., :dv])
    if num_threads == 0:
        num_threads = lam_max_threads()

    buffer_floats = 2 * dk * padded_dv + CACHE_LINE_FLOATS
    buffer_floats += (-buffer_floats) % CACHE_LINE_FLOATS
    buffers = np.empty((num_threads, buffer_floats), dtype=np.float32)

    cdef const float[:, :, :, ::1] q_view = q
    cdef const float[:, :, :, ::1] k_view = k
    cdef const float[:, :, :, ::1] v_view = v
    cdef const float[:, :, ::1] beta_view = beta
    cdef const float[:, :, ::1] decay_fast_view = decay_fast
    cdef const float[:, :, ::1] decay_slow_view = decay_slow
    cdef const float[:, :, ::1] read_fast_view = read_fast
    cdef const float[:, :, ::1] read_slow_view = read_slow
    cdef const unsigned char[:, ::1] mask_view = mask
    cdef float[:, :, :, ::1] out_view = out
    cdef float[:, ::1] buffer_view = buffers
    cdef Py_ssize_t pair, b, h
    cdef Py_ssize_t num_pairs = batch * heads
    cdef Py_ssize_t first_backward = heads - num_backward_heads
    cdef Py_ssize_t c_heads = heads, c_length = length, c_dk = dk, c_dv = padded_dv

    # Each pair is computed start to end by one thread in a fixed order, so results do not
    # depend on the thread count or schedule.
    for pair in prange(num_pairs, nogil=True, schedule="dynamic", num_threads=num_threads):
        b = pair // c_heads
        h = pair % c_heads
        scan_pair(
            &q_view[b, h, 0, 0], &k_view[b, h, 0, 0], &v_view[b, h, 0, 0], &beta_view[b, h, 0],
            &decay_fast_view[b, h, 0], &decay_slow_view[b, h, 0],
            &read_fast_view[b, h, 0], &read_slow_view[b, h, 0],
            &mask_view[b, 0], &out_view[b, h, 0, 0], c_length, c_dk, c_dv,
            h >= first_backward, &buffer_view[threadid(), 0],
        )
    return out if padded_dv == dv else np.ascontiguousarray(out[..., :dv])


cdef inline void convolve_row(
    const float* x, const float* taps, const unsigned char* mask, float* out, Py_ssize_t t, Py_ssize_t length,
    Py_ssize_t channels, Py_ssize_t size, Py_ssize_t start, Py_ssize_t stop, bint backward,
) noexcept nogil:
    """out[t, start:stop] = sum over taps j of taps[j] * x[s] for the token s that tap j reads (t-(K-1)+j
    forward, t+(K-1)-j backward), skipping tokens outside [0, L) and masked ones; x, out (L, C)."""
    cdef Py_ssize_t j, c, s
    cdef const float* row
    cdef const float* tap
    for c in range(start, stop):
        out[t * channels + c] = 0.0
    for j in range(size):
        s = t + (size - 1) - j if backward else t - (size - 1) + j
        if s < 0 or s >= length or not mask[s]:
            continue
        row = x + s * channels
        tap = taps + j * channels
        for c in range(start, stop):
            out[t * channels + c] += tap[c] * row[c]


def directional_conv_forward(x, taps, mask, backward, int num_threads=0):
    """Depthwise convolution along each channel's reading direction, masked tokens read as zero.

    x: float32 (B, L, C); taps: float32 (K, C), tap K-1 the current token; mask: uint8 (B, L),
    nonzero for real tokens; backward: uint8 (C,), nonzero for channels that read the K-1 next
    tokens (the others read the K-1 previous ones). All C-contiguous. Returns float32 (B, L, C);
    each output sums its taps in order j = 0 ... K-1, as `lam.modeling_lam.directional_conv`
    does, so the two agree exactly. num_threads: OpenMP threads over tokens; 0 for the default.
    """
    if not isinstance(x, np.ndarray) or x.ndim != 3:
        raise ValueError(f"x must be a 3-d numpy array (B, L, C), got {getattr(x, 'shape', type(x))}")
    batch, length, channels = x.shape
    _check("x", x, np.float32, (batch, length, channels))
    if not isinstance(taps, np.ndarray) or taps.ndim != 2:
        raise ValueError(f"taps must be a 2-d numpy array (K, C), got {getattr(taps, 'shape', type(taps))}")
    _check("taps", taps, np.float32, (taps.shape[0], channels))
    _check("mask", mask, np.uint8, (batch, length))
    _check("backward", backward, np.uint8, (channels,))
    if num_threads < 0:
        raise ValueError(f"num_threads must be >= 0, got {num_threads}")
    out = np.empty((batch, length, channels), dtype=np.float32)
    # Runs of neighbouring channels with one direction, so the inner loops are contiguous.
    starts = np.concatenate([[0], np.flatnonzero(np.diff(backward)) + 1]).astype(np.intp)
    stops = np.append(starts[1:], channels).astype(np.intp)
    runs = np.ascontiguousarray(np.stack([starts, stops, backward[starts].astype(np.intp)], axis=1))
    if out.size == 0:
        return out
    if num_threads == 0:
        num_threads = lam_max_threads()

    cdef const float[:, :, ::1] x_view = x
    cdef const float[:, ::1] taps_view = taps
    cdef const unsigned char[:, ::1] mask_view = mask
    cdef float[:, :, ::1] out_view = out
    cdef const Py_ssize_t[:, ::1] runs_view = runs
    cdef Py_ssize_t row, b, t, r
    cdef Py_ssize_t num_rows = batch * length, c_length = length, c_channels = channels, size = taps.shape[0]
    cdef Py_ssize_t num_runs = runs.shape[0]
    for row in prange(num_rows, nogil=True, schedule="static", num_threads=num_threads):
        b = row // c_length
        t = row % c_length
        for r in range(num_runs):
            convolve_row(&x_view[b, 0, 0], &taps_view[0, 0], &mask_view[b, 0], &out_view[b, 0, 0], t, c_length,
                         c_channels, size, runs_view[r, 0], runs_view[r, 1], runs_view[r, 2] != 0)
    return out
