"""The JAX forms of the delta rule beyond the shared grid of tests/test_delta_rule_forms.py (which
checks every form against the float64 reference): float64 under `jax.enable_x64` to float64
rounding, the token scan's blocking and unrolling, chunk sizes, the chunkwise form's triangular inverse.
"""

from __future__ import annotations

import numpy as np
import pytest

from required import require_jax

jax = require_jax()

from lam._jax_core import delta_rule_chunked, delta_rule_scan, unit_lower_inverse  # noqa: E402
from delta_rule_cases import WIDTH, reference_case  # noqa: E402
from lam.reference import DeltaRuleInputs  # noqa: E402

TOLERANCE = 1e-5
HEADS = 6

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


