"""Every form of the delta rule, from one registry, over the same cases.

SPEC §3: each fast form (torch chunkwise, compiled Cython token scan, JAX token scan, JAX chunkwise)
matches the float64 reference (`lam.reference`) to <= 1e-5 max abs on unit-scale float32 inputs, for
lengths on and off the chunk size, with padding and general masks, in both reading directions, with
key and value widths that differ; masked positions are zero and masked inputs change nothing. The
differentiable forms' gradients equal autograd through a float64 torch token loop of the reference
(which itself equals `lam.reference`). A missing JAX or Cython kernel fails (see tests/required.py).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from delta_rule_cases import reference_case
from lam import _torch_core
from lam.reference import DeltaRuleInputs
from required import require_cython, require_jax

jax = require_jax()
from lam import _jax_core  # noqa: E402

TOLERANCE = 1e-5
HEADS = 6
CHUNK = 64  # the torch and JAX chunkwise forms' default
pytestmark = pytest.mark.usefixtures("one_torch_thread")

# (batch, length, mask kind, num_backward_heads, dk, dv): every length with mixed directions;
# forward-only and backward-only below and above one chunk; general masks; unequal widths.
LENGTHS = (1, 7, 63, 64, 65, 200, 1000)
CASES = ([(2 if length >= 1000 else 3, length, "padded", 2, 32, 32) for length in LENGTHS]
         + [(3, length, "padded", heads, 32, 32) for length in (7, 65) for heads in (0, HEADS)]
         + [(3, length, "holes", 3, 32, 32) for length in (9, 130)]
         + [(3, 70, "holes", 3, 24, 40)])


def as_torch(inputs: DeltaRuleInputs, dtype=None) -> DeltaRuleInputs:
    tensors = [torch.from_numpy(np.asarray(x)) for x in inputs]
    return DeltaRuleInputs(*(t.to(dtype) if dtype else t for t in tensors[:-1]), tensors[-1])


def torch_form(form: str, **options):
    def run(inputs: DeltaRuleInputs, num_backward_heads: int) -> np.ndarray:
        with torch.inference_mode():
            return _torch_core.delta_rule(form, as_torch(inputs), num_backward_heads, **options).numpy()
    return run


def cython_form(inputs: DeltaRuleInputs, num_backward_heads: int) -> np.ndarray:
    require_cython()
    return torch_form("cython")(inputs, num_backward_heads)


def jax_form(form: str):
    jitted = jax.jit(_jax_core.delta_rule, static_argnums=(0, 2))
    return lambda inputs, num_backward_heads: np.asarray(jitted(form, inputs, num_backward_heads))


FORMS = {"torch-chunk": torch_form("chunk", chunk_size=CHUNK), "cython": cython_form,
         "jax-scan": jax_form("scan"), "jax-chunk": jax_form("chunk")}


def case(batch, length, mask_kind, num_backward_heads, dk, dv):
    """DeltaRuleInputs of unit-scale float32 arrays and the float64 reference output."""
    inputs, expected = reference_case(batch, length, mask_kind, HEADS, num_backward_heads, dk, dv)
    return DeltaRuleInputs(**inputs), expected


def max_error(actual, expected) -> float:
    assert actual.shape == expected.shape
    return float(np.abs(np.asarray(actual, dtype=np.float64) - expected).max())


@pytest.mark.parametrize("shape", CASES, ids=lambda c: "{}x{}-{}-back{}-{}x{}".format(*c))
@pytest.mark.parametrize("form", FORMS)
def test_form_matches_reference(form, shape):
    inputs, expected = case(*shape)
    assert inputs.mask.flags.c_contiguous == (shape[2] == "padded")  # "holes" masks are strided views
    actual = FORMS[form](inputs, shape[3])
    assert actual.dtype == np.float32
    assert max_error(actual, expected) <= TOLERANCE
    masked = np.broadcast_to((inputs.mask == 0)[:, None], actual.shape[:3])
    assert not actual[masked].any()


@pytest.mark.parametrize("form", FORMS)
def test_masked_inputs_change_nothing(form):
    inputs, _ = case(3, 130, "holes", 3, 32, 32)
    masked = np.broadcast_to((inputs.mask == 0)[:, None], inputs.beta.shape)
    rng = np.random.default_rng(1)
    noisy = [np.where(masked[..., None] if x.ndim == 4 else masked, rng.uniform(0.1, 0.9, x.shape), x).astype(np.float32)
             for x in inputs[:-1]]
    clean = FORMS[form](inputs, 3)
    assert np.abs(FORMS[form](DeltaRuleInputs(*noisy, inputs.mask), 3) - clean).max() <= 1e-6


def torch_token_loop(inputs: DeltaRuleInputs, num_backward_heads: int) -> torch.Tensor:
    """The reference's recurrence in torch (differentiable), token by token: o (B, H, L, Dv).

    Per head and memory, S <- decay (I - beta k k^T) S + beta k v^T at real tokens, read
    o = read_fast S_fast^T q + read_slow S_slow^T q; the last `num_backward_heads` heads run from the end.
    """
    q, k, v, beta, decay_fast, decay_slow, read_fast, read_slow = inputs[:-1]
    batch, heads, length, dk = k.shape
    backward = torch.arange(heads) >= heads - num_backward_heads
    real = (inputs.mask != 0)[:, None, :].expand(batch, heads, length)

    def reading(x):  # time reversed for the backward heads (an involution)
        flags = backward.view(1, heads, *[1] * (x.dim() - 2))
        return torch.where(flags, x.flip(2), x)

    q, k, v, beta, real = map(reading, (q, k, v, beta, real))
    memories = [(reading(decay_fast), reading(read_fast)), (reading(decay_slow), reading(read_slow))]
    states = [k.new_zeros(batch, heads, dk, v.shape[-1]) for _ in memories]
    outputs = []
    for t in range(length):
        k_t, v_t, q_t, beta_t = k[:, :, t], v[:, :, t], q[:, :, t], beta[:, :, t, None, None]
        read = 0
        for i, (decay, weight) in enumerate(memories):
            erased = states[i] - beta_t * k_t[..., :, None] * torch.einsum("bhi,bhij->bhj", k_t, states[i])[..., None, :]
            written = decay[:, :, t, None, None] * erased + beta_t * k_t[..., :, None] * v_t[..., None, :]
            states[i] = torch.where(real[:, :, t, None, None], written, states[i])
            read = read + weight[:, :, t, None] * torch.einsum("bhij,bhi->bhj", states[i], q_t)
        outputs.append(torch.where(real[:, :, t, None], read, 0))
    return reading(torch.stack(outputs, dim=2))


@pytest.mark.parametrize("shape", [(3, 70, "holes", 3, 24, 40), (3, 65, "padded", 2, 32, 32)])
def test_torch_token_loop_is_the_reference(shape):
    inputs, expected = case(*shape)
    assert max_error(torch_token_loop(as_torch(inputs, torch.float64), shape[3]).numpy(), expected) <= 1e-12


GRADIENT_CHUNK = 8  # below the length: gradients flow through the state carried across chunks


def torch_gradients(function, inputs: DeltaRuleInputs, weights: np.ndarray, num_backward_heads: int):
    """d sum(o * weights) / d (q, k, v, five gates) of a torch function, float64 numpy."""
    tensors = as_torch(inputs, torch.float64)
    floats = [t.requires_grad_() for t in tensors[:-1]]
    (function(DeltaRuleInputs(*floats, tensors.mask), num_backward_heads) * torch.from_numpy(weights)).sum().backward()
    return [t.grad.numpy() for t in floats]


def jax_gradients(form: str):
    def gradients(inputs: DeltaRuleInputs, weights: np.ndarray, num_backward_heads: int):
        with jax.enable_x64(True):
            def loss(floats):
                out = _jax_core.delta_rule(form, DeltaRuleInputs(*floats, inputs.mask), num_backward_heads,
                                           **({"chunk_size": GRADIENT_CHUNK} if form == "chunk" else {}))
                return (out * weights).sum()

            return [np.asarray(g) for g in jax.jit(jax.grad(loss))([np.float64(x) for x in inputs[:-1]])]
    return gradients


GRADIENTS = {
    "torch-chunk": lambda inputs, weights, heads: torch_gradients(
        lambda x, n: _torch_core.delta_rule("chunk", x, n, chunk_size=GRADIENT_CHUNK), inputs, weights, heads),
    "jax-scan": jax_gradients("scan"),
    "jax-chunk": jax_gradients("chunk"),
}


@pytest.mark.parametrize("form", GRADIENTS)
def test_gradients_match_autograd_through_the_reference(form):
    inputs, _ = case(3, 19, "holes", 2, 8, 8)
    weights = np.random.default_rng(2).standard_normal(inputs.v.shape)
    expected = torch_gradients(torch_token_loop, inputs, weights, 2)
    actual = GRADIENTS[form](inputs, weights, 2)
    for name, a, e in zip(DeltaRuleInputs._fields, actual, expected):
        assert a.shape == e.shape and np.abs(a - e).max() <= 1e-9 * max(np.abs(e).max(), 1.0), name


@pytest.mark.parametrize("core", (_torch_core, _jax_core), ids=("torch", "jax"))
def test_dispatch_rejects_unknown_forms(core):
    inputs, _ = case(3, 7, "padded", 2, 32, 32)
    with pytest.raises(ValueError, match="form must be one of"):
        core.delta_rule("fast", inputs, 2)
