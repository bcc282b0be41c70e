"""The hierarchical delta rule in PyTorch: its forms and the dispatch between them (as `lam._jax_core`).

Forms: "chunk", the chunkwise-parallel form with autograd (written in the plain model
`lam.modeling_lam`, which travels without `lam` and so keeps positional arguments); "cython", the
compiled token scan of `lam._cython` (CPU, no autograd); "reference", the float64 token loop of
`lam.reference`. Each takes a `lam.reference.DeltaRuleInputs` of tensors and `num_backward_heads`.
"""

from __future__ import annotations

import torch

from . import _cython
from . import modeling_lam as plain
from .modeling_lam import reading_order  # noqa: F401  (re-exported)
from .reference import DeltaRuleInputs, delta_rule_reference

FORMS = ("cython", "chunk", "reference")
MODEL_FORMS = ("auto", *FORMS)  # LAMModel.form: a form, or "auto" (chosen per layer)


def delta_rule_chunked(inputs: DeltaRuleInputs, num_backward_heads: int, chunk_size: int = 64) -> torch.Tensor:
    """Chunkwise-parallel form (differentiable): o (B, H, L, Dv), zero where masked."""
    return plain.delta_rule_chunked(*inputs, num_backward_heads, chunk_size=chunk_size)


def delta_rule_scan(inputs: DeltaRuleInputs, num_backward_heads: int) -> torch.Tensor:
    """Compiled token scan (CPU, no autograd): o (B, H, L, Dv) in the inputs' dtype."""
    return _cython.delta_rule_cython(inputs, num_backward_heads).to(inputs.q.dtype)


def delta_rule_float64(inputs: DeltaRuleInputs, num_backward_heads: int) -> torch.Tensor:
    """The float64 reference on tensors (for tests): o (B, H, L, Dv) like q."""
    arrays = DeltaRuleInputs(*(x.detach().cpu().numpy() for x in inputs))
    return torch.from_numpy(delta_rule_reference(arrays, num_backward_heads)).to(inputs.q)


def delta_rule(form: str, inputs: DeltaRuleInputs, num_backward_heads: int, **options) -> torch.Tensor:
    """Dispatch to the "cython", "chunk" or "reference" form; options go to the form (chunk_size)."""
    forms = {"cython": delta_rule_scan, "chunk": delta_rule_chunked, "reference": delta_rule_float64}
    if form not in forms:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    return forms[form](inputs, num_backward_heads, **options)
