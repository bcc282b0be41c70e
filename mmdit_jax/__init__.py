"""mmdit_jax: the Multi-Modal Diffusion Transformer (SD3 / SD3.5 joint attention) in JAX and Equinox.

Every module processes a single example; batch with `jax.vmap` / `eqx.filter_vmap`.
"""

from .blocks import BlockModulation, MMDiTBlock
from .feedforward import SwiGLU
from .final_layer import ModulatedFinalLayer
from .helpers import (
    ATTENTION_IMPLEMENTATIONS,
    HAS_NATIVE_DOT_PRODUCT_ATTENTION,
    dot_product_attention_compat,
    fallback_attention,
    uses_native_attention,
)
from .in_context_blocks import InContextMMDiTBlock
from .in_context_final_layer import SimpleFinalLayer
from .in_context_models import InContextMMDiT
from .joint_attention import JointAttention
from .layer_stack import stack_blocks, unstack_blocks
from .layers import AdaptiveLayerNorm, TimestepEmbedding, sinusoidal_embedding
from .masks import block_modality_attention, full_attention_mask, make_modality_causal, modality_spans
from .models import MMDiT
from .modulation import AdaptiveModulation, modulate
from .norms import RMSNorm, layer_norm

__version__ = "0.2.0"

__all__ = [
    "ATTENTION_IMPLEMENTATIONS",
    "HAS_NATIVE_DOT_PRODUCT_ATTENTION",
    "AdaptiveLayerNorm",
    "AdaptiveModulation",
    "BlockModulation",
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
    "stack_blocks",
    "unstack_blocks",
    "uses_native_attention",
]
