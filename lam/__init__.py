"""LAM: linear-attention sentence embeddings with a torch (Cython) and a JAX backend."""

from transformers import AutoConfig, AutoModel

from ._torch_model import LAMModel
from .config import LAMConfig
from .facade import LAM, BackendFallbackWarning

__version__ = "0.1.0"
__all__ = ["LAM", "LAMConfig", "LAMModel", "BackendFallbackWarning", "__version__"]

AutoConfig.register("lam", LAMConfig, exist_ok=True)
AutoModel.register(LAMConfig, LAMModel, exist_ok=True)
