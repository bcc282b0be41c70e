"""Installation check: `python -m mmdit_jax.verify_installation`.

Prints versions, then one PASS/FAIL line per check; exits 1 if any check fails.
"""

from __future__ import annotations

import platform
import sys
import traceback
from collections.abc import Callable
from importlib import metadata

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import mmdit_jax
from mmdit_jax import (
    HAS_NATIVE_DOT_PRODUCT_ATTENTION,
    InContextMMDiT,
    MMDiT,
    block_modality_attention,
    dot_product_attention_compat,
    fallback_attention,
    full_attention_mask,
    make_modality_causal,
)

DIM_MODALITIES = (8, 6)
DIM_OUTS = (3, 4)
SEQ_LENS = (5, 4)
TINY = dict(dim_head=4, heads=2, ff_mult=2)


def _key(seed: int) -> jax.Array:
    return jax.random.PRNGKey(seed)


def _normal(shape: tuple[int, ...], rng: np.random.Generator) -> jax.Array:
    # Inputs come from numpy: jax.random would compile a sampler for every new shape.
    return jnp.asarray(rng.standard_normal(shape), dtype=jnp.float32)


def _tokens(seed: int = 0) -> tuple[jax.Array, ...]:
    rng = np.random.default_rng(seed)
    return tuple(_normal((n, d), rng) for n, d in zip(SEQ_LENS, DIM_MODALITIES))


def _mmdit(**overrides) -> MMDiT:
    config = dict(depth=2, dim_cond=16, timestep_embed_dim=8, **TINY)
    return MMDiT(dim_modalities=DIM_MODALITIES, dim_outs=DIM_OUTS, **{**config, **overrides}, key=_key(1))


def _check_outputs(outputs) -> None:
    expected = tuple((n, d) for n, d in zip(SEQ_LENS, DIM_OUTS))
    shapes = tuple(o.shape for o in outputs)
    assert shapes == expected, f"output shapes {shapes}, expected {expected}"
    assert all(bool(jnp.all(jnp.isfinite(o))) for o in outputs), "non-finite output"


def _numpy_attention(q, k, v, bias, mask) -> np.ndarray:
    """Plain float64 softmax attention, the yardstick for both attention paths."""
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    logits = np.einsum("...qhd,...khd->...hqk", q, k) / np.sqrt(q.shape[-1])
    if bias is not None:
        logits = logits + np.asarray(bias)
    if mask is not None:
        logits = np.where(np.asarray(mask), logits, -np.inf)
    weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
    weights /= weights.sum(axis=-1, keepdims=True)
    return np.einsum("...hqk,...khd->...qhd", weights, v)


def _compare_attention(batch_shape=(), with_mask=False, with_bias=False) -> None:
    rng = np.random.default_rng(2)
    q = _normal(batch_shape + (5, 2, 4), rng)
    k = _normal(batch_shape + (7, 2, 4), rng)
    v = _normal(batch_shape + (7, 2, 4), rng)
    bias = _normal((2, 5, 7), rng) if with_bias else None
    mask = None
    if with_mask:
        mask = jnp.asarray(rng.random((5, 7)) < 0.6).at[:, 0].set(True)  # no fully masked row
    expected = _numpy_attention(q, k, v, bias, mask)
    with fallback_attention():
        fallback = dot_product_attention_compat(q, k, v, bias=bias, mask=mask)
    np.testing.assert_allclose(np.asarray(fallback), expected, rtol=1e-5, atol=1e-5)
    if HAS_NATIVE_DOT_PRODUCT_ATTENTION:
        native = dot_product_attention_compat(q, k, v, bias=bias, mask=mask)
        np.testing.assert_allclose(np.asarray(fallback), np.asarray(native), rtol=1e-5, atol=1e-6)


def check_attention_basic() -> None:
    _compare_attention()


def check_attention_masked() -> None:
    _compare_attention(with_mask=True)


def check_attention_biased() -> None:
    _compare_attention(with_bias=True)


def check_attention_batched() -> None:
    _compare_attention(batch_shape=(3,), with_mask=True, with_bias=True)


def check_mmdit_forward() -> None:
    _check_outputs(_mmdit()(_tokens(), jnp.asarray(0.5)))


def check_mmdit_forward_masked() -> None:
    mask = make_modality_causal(full_attention_mask(SEQ_LENS), SEQ_LENS, modality=1)
    mask = block_modality_attention(mask, SEQ_LENS, query_modality=0, key_modality=1)
    _check_outputs(_mmdit()(_tokens(), jnp.asarray(0.5), mask))


def check_vmap_batching() -> None:
    model = _mmdit()
    examples = [_tokens(seed) for seed in range(3)]
    batch = tuple(jnp.stack(parts) for parts in zip(*examples))
    times = jnp.linspace(0.1, 0.9, 3)
    batched = eqx.filter_jit(eqx.filter_vmap(model))(batch, times)
    for index, example in enumerate(examples):
        for got, want in zip(batched, model(example, times[index])):
            np.testing.assert_allclose(np.asarray(got[index]), np.asarray(want), rtol=1e-5, atol=1e-5)


def check_in_context_mmdit() -> None:
    model = InContextMMDiT(1, DIM_MODALITIES, DIM_OUTS, **TINY, key=_key(3))
    _check_outputs(model(_tokens()))


def _loss(model, tokens):
    return sum(jnp.mean(jnp.square(o)) for o in model(tokens, 0.5))


def check_gradients() -> None:
    loss, grads = jax.jit(jax.value_and_grad(_loss))(_mmdit(depth=1), _tokens())
    leaves = jax.tree_util.tree_leaves(grads)
    assert bool(jnp.isfinite(loss)), "non-finite loss"
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves), "non-finite gradient"
    assert any(bool(jnp.any(g != 0)) for g in leaves), "all gradients are zero"


def check_scan_and_remat() -> None:
    tokens = _tokens()
    expected = _mmdit()(tokens, 0.5)
    got = _mmdit(scan_layers=True, remat=True)(tokens, 0.5)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)


def check_multiple_conditioning() -> None:
    model = _mmdit(timestep_embed_dim=(8, 8))
    _check_outputs(model(_tokens(), (jnp.asarray(0.7), jnp.asarray(0.2))))


CHECKS: tuple[tuple[str, Callable[[], None]], ...] = (
    ("attention compat: basic", check_attention_basic),
    ("attention compat: masked", check_attention_masked),
    ("attention compat: biased", check_attention_biased),
    ("attention compat: batched", check_attention_batched),
    ("MMDiT forward", check_mmdit_forward),
    ("MMDiT forward with masks", check_mmdit_forward_masked),
    ("vmap batching", check_vmap_batching),
    ("InContextMMDiT forward", check_in_context_mmdit),
    ("gradients under plain jax.jit", check_gradients),
    ("multiple conditioning variables", check_multiple_conditioning),
    ("layer scan and remat give the unrolled outputs", check_scan_and_remat),
)


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def print_versions() -> None:
    print(f"python      {platform.python_version()}")
    print(f"jax         {jax.__version__} (backend: {jax.default_backend()})")
    for distribution in ("jaxlib", "equinox", "einops", "optax"):
        print(f"{distribution:<11} {_version(distribution)}")
    print(f"mmdit_jax   {mmdit_jax.__version__}")
    native = "yes" if HAS_NATIVE_DOT_PRODUCT_ATTENTION else "no (einsum fallback)"
    print(f"native jax.nn.dot_product_attention: {native}")


def run_checks(checks) -> int:
    """Run each check, print PASS/FAIL per check; returns the number of failures."""
    failures = 0
    for name, check in checks:
        try:
            check()
        except Exception as error:  # noqa: BLE001 - report every failure, keep going
            failures += 1
            print(f"FAIL  {name}: {type(error).__name__}: {error}")
            traceback.print_exc(limit=3, file=sys.stderr)
        else:
            print(f"PASS  {name}")
    return failures


def main() -> int:
    print_versions()
    print()
    failures = run_checks(CHECKS)
    print()
    print(f"{len(CHECKS) - failures}/{len(CHECKS)} checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
