"""The hierarchical delta rule in PyTorch: the names of its forms. The chunkwise-parallel form
(with autograd) lives in the plain model `lam.modeling_lam`; the compiled Cython token scan in
`lam._cython`; the float64 reference in `lam.reference`.

Shapes as in `lam.reference`: q, k, v (B, H, L, D); gates (B, H, L); mask (B, L).
"""

from __future__ import annotations

from .modeling_lam import delta_rule_chunked, reading_order  # noqa: F401  (re-exported)

KERNELS = ("auto", "cython", "chunk", "reference")
