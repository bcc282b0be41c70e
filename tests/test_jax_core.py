"""Both JAX forms of the delta rule (token scan, chunkwise) against the float64 reference.

SPEC §3: every form matches the reference to <= 1e-5 max abs on unit-scale float32 inputs, for
lengths on and off the chunk size, with padding and general masks, in both directions; and,
with 64-bit types enabled, to float64 rounding.
"""

from __future__ import annotations


import numpy as np
import pytest

jax = pytest.importorskip("jax")

from lam._jax_core import delta_rule, delta_rule_chunked, delta_rule_scan, unit_lower_inverse  # noqa: E402
from delta_rule_cases import WIDTH, reference_case  # noqa: E402
from lam.reference import DeltaRuleInputs  # noqa: E402

TOLERANCE = 1e-5
HEADS = 6
LENGTHS = (1, 7, 63, 64, 65, 200, 1000)
# (length, num_backward_heads): every length with mixed directions; forward-only and
# backward-only at lengths below and above one chunk.
CASES = [(length, 2) for length in LENGTHS] + [(length, heads) for length in (7, 65) for heads in (0, HEADS)]

scan = jax.jit(delta_rule_scan, static_argnames=("num_backward_heads", "unroll", "block_pairs"))
chunked = jax.jit(delta_rule_chunked, static_argnames=("num_backward_heads", "chunk_size"))
FORMS = {"scan": scan, "chunk": chunked}


def case(batch, length, mask_kind, num_backward_heads, dk=WIDTH, dv=WIDTH):
    """Unit-scale float32 inputs (a dict of numpy arrays) and the float64 reference output."""
    return reference_case(batch, length, mask_kind, HEADS, num_backward_heads, dk, dv)


def max_error(actual, expected):
    actual = np.asarray(actual)
    assert actual.shape == expected.shape
    return float(np.abs(actual.astype(np.float64) - expected).max())


@pytest.mark.parametrize(("length", "num_backward_heads"), CASES)
@pytest.mark.parametrize("form", FORMS)
def test_matches_reference(form, length, num_backward_heads):
    inputs, expected = case(2 if length >= 1000 else 3, length, "padded", num_backward_heads)
    actual = FORMS[form](DeltaRuleInputs(**inputs), num_backward_heads=num_backward_heads)
    assert actual.dtype == np.float32
    assert max_error(actual, expected) <= TOLERANCE
    assert not np.asarray(actual)[np.broadcast_to((inputs["mask"] == 0)[:, None], actual.shape[:3])].any()


@pytest.mark.parametrize("length", (9, 130))
@pytest.mark.parametrize("form", FORMS)
def test_general_mask(form, length):
    inputs, expected = case(3, length, "holes", 3)
    assert max_error(FORMS[form](DeltaRuleInputs(**inputs), num_backward_heads=3), expected) <= TOLERANCE


@pytest.mark.parametrize("form", FORMS)
def test_masked_tokens_change_nothing(form):
    inputs, _ = case(3, 70, "holes", 3)
    noisy = dict(inputs)
    masked = inputs["mask"] == 0
    rng = np.random.default_rng(1)
    for name in ("q", "k", "v", "beta", "decay_fast", "decay_slow", "read_fast", "read_slow"):
        noisy[name] = inputs[name].copy()
        noisy[name][masked[:, None].repeat(HEADS, 1)] = rng.uniform(0.1, 0.9)
    clean = np.asarray(FORMS[form](DeltaRuleInputs(**inputs), num_backward_heads=3))
    assert np.abs(np.asarray(FORMS[form](DeltaRuleInputs(**noisy), num_backward_heads=3)) - clean).max() <= 1e-6


@pytest.mark.parametrize("form", FORMS)
def test_key_and_value_widths_differ(form):
    inputs, expected = case(3, 70, "holes", 3, dk=24, dv=40)
    assert max_error(FORMS[form](DeltaRuleInputs(**inputs), num_backward_heads=3), expected) <= TOLERANCE


@pytest.mark.parametrize("form", FORMS)
def test_float64_under_enable_x64(form):
    inputs, expected = case(3, 65, "padded", 2)
    with jax.enable_x64(True):
        actual = FORMS[form](DeltaRuleInputs(**{name: x.astype(np.float64) for name, x in inputs.items()}), num_backward_heads=2)
        assert actual.dtype == np.float64
        assert max_error(actual, expected) <= 1e-12


def test_scan_blocking_and_unroll_change_no_result():
    inputs, expected = case(3, 63, "padded", 2)
    default = np.asarray(scan(DeltaRuleInputs(**inputs), num_backward_heads=2))
    for options in ({"block_pairs": 1}, {"block_pairs": 5}, {"block_pairs": 3 * HEADS}, {"unroll": 4}):
        assert np.abs(np.asarray(scan(DeltaRuleInputs(**inputs), num_backward_heads=2, **options)) - default).max() <= 1e-6


@pytest.mark.parametrize("chunk_size", (8, 16, 128))
def test_chunk_sizes(chunk_size):
    inputs, expected = case(3, 100, "padded", 2)
    assert max_error(chunked(DeltaRuleInputs(**inputs), num_backward_heads=2, chunk_size=chunk_size), expected) <= TOLERANCE


def test_chunk_size_must_be_a_power_of_two():
    inputs, _ = case(3, 100, "padded", 2)
    with pytest.raises(ValueError, match="power of two"):
        chunked(DeltaRuleInputs(**inputs), num_backward_heads=2, chunk_size=48)


@pytest.mark.parametrize("size", (1, 2, 8, 64))
def test_unit_lower_inverse(size):
    rng = np.random.default_rng(size)
    system = np.tril(rng.uniform(-1, 1, (3, size, size)), -1) + np.eye(size)
    with jax.enable_x64(True):
        inverse = np.asarray(unit_lower_inverse(system))
    assert np.abs(inverse - np.linalg.inv(system)).max() <= 1e-9 * np.abs(np.linalg.inv(system)).max()


def test_dispatch_rejects_unknown_forms():
    inputs, _ = case(3, 7, "padded", 2)
    with pytest.raises(ValueError, match="form must be one of"):
        delta_rule("cython", DeltaRuleInputs(**inputs), 2)
