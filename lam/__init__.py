"""LAM: linear-attention sentence embeddings with a torch (Cython) and a JAX backend.

`import lam` imports neither torch, transformers nor JAX: every public name loads its module on
first use. `LAMHyperparameters` is a plain dataclass (config.json); `LAMConfig`, its transformers
adapter, imports transformers, and `LAMModel` (the torch model) registers `model_type: "lam"` with
transformers' Auto classes.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"
__all__ = ["LAM", "LAMConfig", "LAMHyperparameters", "LAMModel", "BackendFallbackWarning", "search_documents",
           "__version__"]

_LAZY_ATTRIBUTES = {"LAM": ".facade", "BackendFallbackWarning": ".facade", "LAMConfig": ".config",
                    "LAMHyperparameters": ".config", "LAMModel": "._torch_model", "search_documents": ".chunking"}


def __getattr__(name: str):
    if name in _LAZY_ATTRIBUTES:
        return getattr(importlib.import_module(_LAZY_ATTRIBUTES[name], __name__), name)
    raise AttributeError(f"module 'lam' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
