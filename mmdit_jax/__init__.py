"""mmdit_jax: the Multi-Modal Diffusion Transformer (SD3 / SD3.5 joint attention) in JAX and Equinox.

Every module processes a single example; batch with `jax.vmap` / `eqx.filter_vmap`.
"""

from .attention import (
    HAS_NATIVE_DOT_PRODUCT_ATTENTION,
    dot_product_attention_compat,
    fallback_attention,
    uses_native_attention,
)
from .feedforward import SwiGLU
from .final_layers import ModulatedFinalLayer, SimpleFinalLayer
from .in_context import InContextMMDiT, InContextMMDiTBlock
from .joint_attention import JointAttention
from .masks import block_modality_attention, full_attention_mask, make_modality_causal, modality_spans
from .mmdit import MMDiT, MMDiTBlock
from .modulation import AdaptiveModulation, modulate
from .norms import RMSNorm, layer_norm
from .timestep import TimestepEmbedding, sinusoidal_embedding

__version__ = "0.1.0"

__all__ = [
    "HAS_NATIVE_DOT_PRODUCT_ATTENTION",
    "AdaptiveModulation",
    "InContextMMDiT",
    "InContextMMDiTBlock",
    "JointAttention",
    "MMDiT",
    "MMDiTBlock",
    "ModulatedFinalLayer",
    "RMSNorm",
    "SimpleFinalLayer",
    "SwiGLU",
    "TimestepEmbedding",
    "__version__",
    "block_modality_attention",
    "dot_product_attention_compat",
    "fallback_attention",
    "full_attention_mask",
    "layer_norm",
    "make_modality_causal",
    "modality_spans",
    "modulate",
    "sinusoidal_embedding",
    "uses_native_attention",
]
