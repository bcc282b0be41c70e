"""The LAM encoder in JAX (SPEC §1-2): pure functions over typed parameter containers.

The parameters (`lam._jax_params.Params`, built by `lam.conversion`) are NamedTuples of arrays
mirroring the torch modules: `Linear(kernel (in, out), bias (out,))`, `LayerNorm(scale, bias)`,
`Conv(taps (K, C))`; `Params.layers` is a tuple of `Layer`s, run by a Python loop
that unrolls at trace time: a `lax.scan` over stacked layers made XLA copy every layer's
weights out of the stack on each call (9% of a (32, 16) batch on CPU). Inputs long enough to
run in token blocks do scan over the layers (see `encode`). Matmuls use full
float32 precision (`Precision.HIGHEST`: no TF32 on accelerators), so results match torch float32.

Compute precision (`with_compute_precision`): the wide linears' kernels may be stored in
bfloat16 (inputs cast to bfloat16, float32 accumulation) or int8 per output column with a
`kernel_scale` (inputs quantised to int8 per token on each call, int32 accumulation); `linear`
follows the kernel's dtype. Everything else computes in float32.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from ._jax_core import HIGHEST, delta_rule
from ._jax_params import Embeddings, Layer, LayerNorm, Linear, Mixer, Params
from .backends import check_compute_precision
from .config import LAMHyperparameters
from .reference import DeltaRuleInputs
from .token_blocks import DEFAULT_BLOCK_TOKENS, block_layout


def linear(params: Linear, x):
    """x (..., in) @ kernel (in, out) + bias (out,): float32 (..., out), computed in the kernel's
    precision (float32, bfloat16 or int8, see the module docstring)."""
    kernel = params.kernel
    if kernel.dtype == jnp.int8:
        step = jnp.maximum(jnp.max(jnp.abs(x), axis=-1, keepdims=True), 1e-12) / 127
        quantized = jnp.round(x / step).astype(jnp.int8)
        y = jnp.matmul(quantized, kernel, preferred_element_type=jnp.int32).astype(jnp.float32)
        y = y * step * params.kernel_scale
    elif kernel.dtype == jnp.bfloat16:
        y = jnp.matmul(x.astype(jnp.bfloat16), kernel, preferred_element_type=jnp.float32)
    else:
        y = jnp.matmul(x, kernel, precision=HIGHEST)
    return y + params.bias


def with_compute_precision(params: Params, precision: str) -> Params:
    """`params` with the wide linears' kernels (each layer's mixer in_proj and o_proj, ffn_in, ffn_out)
    in `precision`: "float32" (unchanged), "bfloat16", or "int8" (symmetric, per output column, plus
    `kernel_scale`)."""
    if check_compute_precision(precision) == "float32":
        return params

    def layer_in_precision(layer: Layer) -> Layer:
        wide = lambda params: _linear_in_precision(params, precision)  # noqa: E731
        mixer = layer.mixer._replace(in_proj=wide(layer.mixer.in_proj), o_proj=wide(layer.mixer.o_proj))
        return layer._replace(mixer=mixer, ffn_in=wide(layer.ffn_in), ffn_out=wide(layer.ffn_out))

    return params._replace(layers=tuple(layer_in_precision(layer) for layer in params.layers))


def _linear_in_precision(params: Linear, precision: str) -> Linear:
    kernel = jnp.asarray(params.kernel, jnp.float32)
    if precision == "bfloat16":
        return params._replace(kernel=kernel.astype(jnp.bfloat16))
    scale = jnp.maximum(jnp.max(jnp.abs(kernel), axis=0), 1e-12) / 127
    return params._replace(kernel=jnp.round(kernel / scale).astype(jnp.int8), kernel_scale=scale)


def layer_norm(params: LayerNorm, x, eps: float):
    """LayerNorm over the last dimension, with scale and bias."""
    mean = jnp.mean(x, axis=-1, keepdims=True)
    variance = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    return (x - mean) * lax.rsqrt(variance + eps) * params.scale + params.bias


def l2_normalize(x, eps: float):
    """x / sqrt(|x|^2 + eps) over the last dimension."""
    return x * lax.rsqrt(jnp.sum(x * x, axis=-1, keepdims=True) + eps)


def directional_conv(x, taps, backward_channels: int):
    """Depthwise convolution along each channel's reading direction.

    x: (B, L, C); taps: (K, C). Tap K-1 is the current token; forward channels read the K-1
    previous tokens, the last `backward_channels` channels the K-1 next ones (zeros past the ends).
    """
    size, channels = taps.shape
    length, split = x.shape[1], channels - backward_channels
    past = jnp.pad(x[..., :split], ((0, 0), (size - 1, 0), (0, 0)))
    future = jnp.pad(x[..., split:], ((0, 0), (0, size - 1), (0, 0)))
    # The K taps, unrolled at trace time: tap j reads K-1-j tokens back (forward) or ahead (backward).
    forward = sum(taps[j, :split] * past[:, j:j + length] for j in range(size))
    backward = sum(taps[j, split:] * future[:, size - 1 - j:size - 1 - j + length] for j in range(size))
    return jnp.concatenate([forward, backward], axis=-1)


def embeddings(params: Embeddings, input_ids, config: LAMHyperparameters):
    """Word + token type 0 + position (per `config.position_policy`), then LayerNorm: (B, L, d)."""
    x = jnp.take(params.word, input_ids, axis=0) + params.token_type[0]
    if config.position_policy == "clamp":
        positions = jnp.minimum(jnp.arange(input_ids.shape[1]), config.max_position_embeddings - 1)
        x = x + jnp.take(params.position, positions, axis=0)
    return layer_norm(params.norm, x, config.layer_norm_eps)


def flux(params: Mixer, k, v):
    """Resonance flux psi (B, L, H) in (0, 1): a two-layer SiLU MLP of [k; v] (B, L, H, 2D)."""
    hidden = jax.nn.silu(linear(params.flux_in, jnp.concatenate([k, v], axis=-1)))
    return jax.nn.sigmoid(linear(params.flux_out, hidden))[..., 0]


def map_token_blocks(fn, arrays, block_tokens: int | None, halo: int = 0):
    """fn over blocks of the token axis (1) of `arrays` (B, L, ...), outputs joined along it.

    Blocks follow `lam.token_blocks.block_layout`; more than one runs under `lax.map`.
    fn(windows, offset, size) gets each array's window of the block with up to `halo` extra
    tokens either side (zeros past the ends) and returns a tuple of arrays (B, size, ...) for
    the block's `size` tokens, which start at `offset` in the windows.
    """
    batch, length = arrays[0].shape[:2]
    count, size = block_layout(batch, length, block_tokens)
    if count == 1:
        return fn(arrays, 0, length)
    pad = count * size - length
    padded = [jnp.pad(a, [(0, 0), (halo, pad + halo)] + [(0, 0)] * (a.ndim - 2)) for a in arrays]

    def block(start):
        return fn([lax.dynamic_slice_in_dim(a, start, size + 2 * halo, axis=1) for a in padded], halo, size)

    outputs = lax.map(block, jnp.arange(count) * size)
    return tuple(jnp.moveaxis(o, 0, 1).reshape(batch, count * size, *o.shape[3:])[:, :length] for o in outputs)


def delta_rule_inputs(params: Mixer, x, real, offset: int, size: int, config: LAMHyperparameters):
    """q, k, v (B, T, H, D), the five gates (B, T, H) and SiLU(output gate) (B, T, inner) of the
    `size` tokens from `offset` of a window x (B, W, d) with real (B, W, 1).

    One matmul gives every projection of x (see `lam.conversion`): q, k, v, the output gate
    (B, W, inner) and the logits of the per-head gates (B, W, 5, H).
    """
    batch, inner, heads = x.shape[0], config.inner_size, config.num_heads
    projected = linear(params.in_proj, x)
    q, k, v = (projected[..., i * inner:(i + 1) * inner] for i in range(3))

    def per_head(h, conv):
        h = directional_conv(jnp.where(real, h, 0), conv.taps, config.num_backward_heads * config.head_dim)
        return jax.nn.silu(h[:, offset:offset + size]).reshape(batch, size, heads, config.head_dim)

    q = l2_normalize(per_head(q, params.q_conv), config.qk_norm_eps)
    k = l2_normalize(per_head(k, params.k_conv), config.qk_norm_eps)
    v = per_head(v, params.v_conv)
    gate, gate_logits = jnp.split(projected[:, offset:offset + size, 3 * inner:], [inner], -1)
    beta, fast, slow, read_fast, read_slow = jnp.unstack(jax.nn.sigmoid(gate_logits.reshape(batch, size, 5, heads)),
                                                         axis=2)
    slow = slow * (1 - config.flux_strength * flux(params, k, v))
    return q, k, v, beta, fast, slow, read_fast, read_slow, jax.nn.silu(gate)


def output(params: Mixer, o, gate, config: LAMHyperparameters):
    """Mixer output (B, T, d) from delta-rule reads o (B, T, H, D) and SiLU(output gate) (B, T, inner)."""
    o = o * lax.rsqrt(jnp.mean(o * o, axis=-1, keepdims=True) + config.rms_norm_eps) * params.out_norm
    return linear(params.o_proj, o.reshape(*gate.shape) * gate)


def mixer(params: Mixer, x, mask, config: LAMHyperparameters, form: str, block_tokens: int | None):
    """The LAM mixer: hidden states (B, L, d) and mask (B, L) to (B, L, d); token-wise parts in blocks."""
    real = (mask != 0)[..., None]
    *inputs, gate = map_token_blocks(
        lambda windows, offset, size: delta_rule_inputs(params, *windows, offset, size, config),
        [x, real], block_tokens, halo=config.conv_size - 1)
    head_major = lambda t: jnp.moveaxis(t, 2, 1)  # noqa: E731  (B, L, H, ...) -> (B, H, L, ...)
    options = {} if form == "scan" else {"chunk_size": config.chunk_size}
    o = delta_rule(form, DeltaRuleInputs(*(head_major(t) for t in inputs), mask), config.num_backward_heads, **options)
    return map_token_blocks(lambda windows, offset, size: (output(params, *windows, config),),
                            [jnp.moveaxis(o, 1, 2), gate], block_tokens)[0]


def feed_forward(params: Layer, x, mixed, config: LAMHyperparameters):
    """The layer's output from its input x and the mixer's output, both (B, T, d)."""
    return ffn(params, layer_norm(params.mixer_norm, x + mixed, config.layer_norm_eps), config)


def ffn(params: Layer, h, config: LAMHyperparameters):
    """The layer's output from its feed-forward input h = LN(x + mixer output), (..., d)."""
    hidden = jax.nn.gelu(linear(params.ffn_in, h), approximate=False)
    return layer_norm(params.ffn_norm, h + linear(params.ffn_out, hidden), config.layer_norm_eps)


def layer(params: Layer, x, mask, config: LAMHyperparameters, form: str, block_tokens: int | None):
    """Post-LN block: h = LN(x + Mixer(x)); x' = LN(h + FFN(h)), GELU (erf); token-wise parts in blocks."""
    mixed = mixer(params.mixer, x, mask, config, form, block_tokens)
    return map_token_blocks(lambda windows, offset, size: (feed_forward(params, *windows, config),),
                            [x, mixed], block_tokens)[0]


def encode(params: Params, input_ids, attention_mask, config: LAMHyperparameters, form: str = "scan",
           block_tokens: int | None = DEFAULT_BLOCK_TOKENS):
    """Last hidden states (B, L, d) of token ids and attention mask (B, L).

    Token-wise parts run in blocks of about `block_tokens` tokens (`lam.token_blocks`).
    """
    x = embeddings(params.embeddings, input_ids, config)
    if block_layout(*input_ids.shape, block_tokens)[0] == 1:
        for layer_params in params.layers:
            x = layer(layer_params, x, attention_mask, config, form, block_tokens)
        return x
    # In blocks, a scan over the stacked layers: unrolled, XLA:CPU's default (concurrency-
    # optimised) scheduler gave each layer's block loops their own buffers, 2.2 GB of
    # temporaries at 32k tokens against 0.5 GB for the scan.
    stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *params.layers)
    x, _ = lax.scan(lambda x, layer_params: (layer(layer_params, x, attention_mask, config, form, block_tokens), None),
                    x, stacked)
    return x


def mean_pool(hidden, attention_mask):
    """Mean of hidden (B, L, d) over real tokens of attention_mask (B, L): (B, d)."""
    weights = (attention_mask != 0).astype(hidden.dtype)[..., None]
    return jnp.sum(hidden * weights, axis=1) / jnp.maximum(jnp.sum(weights, axis=1), 1e-9)


def pool(hidden, attention_mask):
    """Sentence embeddings (B, d): `mean_pool` of hidden (B, L, d), L2-normalised."""
    pooled = mean_pool(hidden, attention_mask)
    return pooled / jnp.maximum(jnp.linalg.norm(pooled, axis=-1, keepdims=True), 1e-12)


def embed(params: Params, input_ids, attention_mask, config: LAMHyperparameters, form: str = "scan",
          block_tokens: int | None = DEFAULT_BLOCK_TOKENS):
    """Sentence embeddings (B, d): `pool` of the last hidden states of token ids and attention mask (B, L)."""
    return pool(encode(params, input_ids, attention_mask, config, form, block_tokens), attention_mask)
