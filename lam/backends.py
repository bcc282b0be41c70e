"""Backend names, the 'auto' rule, and loading a backend by name."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # this module is imported by the command-line parser, which stays light
    import numpy as np

    from .config import LAMHyperparameters

BACKEND_ALIASES = {"torch": "torch", "cython": "torch", "jax": "jax"}
BACKEND_CHOICES = ("auto", *BACKEND_ALIASES)
# Precision of the wide matmuls while encoding (`LAM(compute_precision=...)`); the delta rule, norms
# and pooling compute in float32 whatever it is. Distinct from `encode(precision=...)`, which
# quantises the output embeddings.
COMPUTE_PRECISIONS = ("float32", "bfloat16", "int8")


def canonical_backend(name: str) -> str:
    """'torch' or 'jax' for a user's backend name; 'auto' resolves to the measured default."""
    if not isinstance(name, str):
        raise TypeError(f"backend must be a string, got {type(name).__name__}")
    if name == "auto":
        return auto_backend()
    if name not in BACKEND_ALIASES:
        raise ValueError(f"backend must be one of {BACKEND_CHOICES}, got {name!r}")
    return BACKEND_ALIASES[name]


def auto_backend() -> str:
    """The backend 'auto' picks; see README 'Choosing a backend' for the measurements behind it."""
    return "torch"


def other_backend(name: str) -> str:
    return "jax" if name == "torch" else "torch"


def check_compute_precision(precision: str) -> str:
    if precision not in COMPUTE_PRECISIONS:
        raise ValueError(f"compute_precision must be one of {COMPUTE_PRECISIONS}, got {precision!r}")
    return precision


def load_backend(name: str, config: LAMHyperparameters, tensors: dict[str, np.ndarray], device: str | None = None,
                 compute_precision: str = "float32"):
    """Instantiate backend `name` ('torch' or 'jax'); raises whatever its import or set-up raises."""
    if name == "torch":
        from ._torch_backend import TorchBackend

        return TorchBackend(config, tensors, device, compute_precision)
    from ._jax_backend import JaxBackend

    return JaxBackend(config, tensors, device, compute_precision)
