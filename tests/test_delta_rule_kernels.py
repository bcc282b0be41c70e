"""The compiled Cython kernels beyond the shared grid of tests/test_delta_rule_forms.py (which checks
every form against the float64 reference): agreement with the chunkwise form on a larger case,
thread-count invariance, the torch entry point's dtypes, argument checks, the compiled directional
convolution. A missing compiled kernel fails these tests unless LAM_ALLOW_NO_CYTHON=1 (CI builds it).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import delta_rule_cases
import lam._cython as compiled
from delta_rule_cases import WIDTH, reference_case
from required import require_cython
from lam._torch_core import delta_rule_chunked
from lam.cpu import cpu_flags
from lam.reference import DeltaRuleInputs

TOLERANCE = 1e-5
HEADS = 12
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_inputs(batch, length, mask_kind, dk=WIDTH, dv=WIDTH):
    return delta_rule_cases.make_inputs(batch, length, mask_kind, HEADS, dk, dv)


def case(batch, length, mask_kind, num_backward_heads, dk=WIDTH, dv=WIDTH):
    return reference_case(batch, length, mask_kind, HEADS, num_backward_heads, dk, dv)


def as_torch(inputs):
    return DeltaRuleInputs(**{name: torch.from_numpy(x) for name, x in inputs.items()})


def max_error(actual, expected):
    assert actual.shape == expected.shape
    return float(np.abs(np.asarray(actual, dtype=np.float64) - expected).max())


def test_cython_matches_chunked_on_a_larger_case():
    cython_kernel = require_cython().delta_rule_cython
    inputs = make_inputs(16, 300, "padded")
    with torch.inference_mode():
        chunked = delta_rule_chunked(as_torch(inputs), num_backward_heads=6)
    actual = cython_kernel(as_torch(inputs), num_backward_heads=6)
    assert max_error(actual.numpy(), chunked.double().numpy()) <= TOLERANCE


def test_the_avx2_build_is_used_where_the_cpu_has_avx2():
    require_cython()
    expected = "avx2" if "avx2" in cpu_flags() else "baseline"
    assert compiled.VARIANT == expected, f"CPU flags say {expected}; lam._cython loaded {compiled.VARIANT}"


def test_avx2_and_baseline_builds_agree_bit_for_bit():
    require_cython()
    if compiled.VARIANT != "avx2":
        pytest.skip("this CPU does not run the AVX2 build (the test above checks that choice)")
    from lam._cython import delta_rule as baseline
    from lam._cython import delta_rule_avx2 as avx2

    arrays = {name: np.ascontiguousarray(x) for name, x in make_inputs(4, 150, "holes").items()}
    one, two = (build.delta_rule_forward(**arrays, num_backward_heads=5, num_threads=1) for build in (baseline, avx2))
    assert np.abs(one).max() > 0 and np.array_equal(one, two)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 40, 64)).astype(np.float32)
    taps = rng.standard_normal((4, 64)).astype(np.float32)
    mask = (rng.random((3, 40)) > 0.2).astype(np.uint8)
    backward = (np.arange(64) >= 40).astype(np.uint8)
    one, two = (build.directional_conv_forward(x, taps, mask, backward, 1) for build in (baseline, avx2))
    assert np.array_equal(one, two)


def test_thread_count_does_not_change_a_bit():
    require_cython()
    inputs = make_inputs(8, 200, "holes")
    arrays = {name: np.ascontiguousarray(x) for name, x in inputs.items()}
    one = compiled.delta_rule_forward(**arrays, num_backward_heads=5, num_threads=1)
    two = compiled.delta_rule_forward(**arrays, num_backward_heads=5, num_threads=2)
    assert np.array_equal(one, two)


def test_torch_entry_point_takes_any_float_dtype_and_no_grad():
    cython_kernel = require_cython().delta_rule_cython
    inputs, expected = case(3, 65, "padded", 5)
    tensors = {name: x.double().requires_grad_() for name, x in as_torch(inputs)._asdict().items() if name != "mask"}
    mask = torch.from_numpy(inputs["mask"]).bool()
    actual = cython_kernel(DeltaRuleInputs(**tensors, mask=mask), num_backward_heads=5)
    assert actual.dtype == torch.float32 and not actual.requires_grad
    assert max_error(actual.numpy(), expected) <= TOLERANCE


def test_missing_extension_raises_with_build_hint(monkeypatch):
    monkeypatch.setattr(compiled, "AVAILABLE", False)
    monkeypatch.setattr(compiled, "IMPORT_ERROR", ImportError("no module"))
    inputs = make_inputs(1, 1, "padded")
    with pytest.raises(RuntimeError, match="pip install -e ."):
        compiled.delta_rule_cython(as_torch(inputs), num_backward_heads=0)


# Changes to valid arguments that the numpy entry point must reject with a ValueError.
BAD_INPUTS = {
    "q float64": {"q": lambda a: a["q"].astype(np.float64)},
    "q 3-d": {"q": lambda a: a["q"][0]},
    "k other width": {"k": lambda a: np.zeros((*a["k"].shape[:3], WIDTH + 1), np.float32)},
    "v other length": {"v": lambda a: a["v"][:, :, :-1].copy()},
    "v not C-contiguous": {"v": lambda a: np.asfortranarray(a["v"])},
    "beta other shape": {"beta": lambda a: a["beta"][:, :1].copy()},
    "decay_slow float16": {"decay_slow": lambda a: a["decay_slow"].astype(np.float16)},
    "read_fast a list": {"read_fast": lambda a: a["read_fast"].tolist()},
    "mask bool": {"mask": lambda a: a["mask"].astype(bool)},
    "mask other batch": {"mask": lambda a: np.ones((5, a["mask"].shape[1]), np.uint8)},
    "too many backward heads": {"num_backward_heads": lambda a: HEADS + 1},
    "negative backward heads": {"num_backward_heads": lambda a: -1},
    "negative threads": {"num_threads": lambda a: -1},
}


@pytest.mark.parametrize("changes", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_inputs_raise_value_error(changes):
    require_cython()
    inputs = make_inputs(3, 7, "padded")
    arguments = {name: np.ascontiguousarray(x) for name, x in inputs.items()}
    arguments.update(num_backward_heads=5, num_threads=1)
    arguments.update({name: change(arguments) for name, change in changes.items()})
    with pytest.raises(ValueError):
        compiled.delta_rule_forward(**arguments)


@pytest.mark.parametrize("batch, length, channels, backward_channels, size",
                         [(3, 50, 96, 32, 4), (2, 7, 12, 12, 3), (1, 1, 8, 0, 4), (2, 300, 48, 16, 4)])
def test_compiled_directional_conv_equals_the_torch_form(batch, length, channels, backward_channels, size):
    """Bit for bit, masked tokens read as zero, on one thread and two."""
    from lam.modeling_lam import directional_conv

    require_cython()
    generator = torch.Generator().manual_seed(length)
    x = torch.randn(batch, length, channels, generator=generator)
    weight = torch.randn(channels, size, generator=generator)
    real = (torch.rand(batch, length, generator=generator) > 0.3).float()
    expected = directional_conv(x * real[..., None], weight, backward_channels)
    taps = np.ascontiguousarray(weight.numpy().T)
    backward = (np.arange(channels) >= channels - backward_channels).astype(np.uint8)
    mask = real.numpy().astype(np.uint8)
    for threads in (1, 2):
        actual = compiled.directional_conv_forward(x.numpy(), taps, mask, backward, threads)
        assert np.array_equal(actual, expected.numpy())
    with pytest.raises(ValueError):
        compiled.directional_conv_forward(x.numpy(), taps, mask, backward[:-1], 1)
