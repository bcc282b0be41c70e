"""`LAMConfig`: every hyperparameter of the LAM encoder (SPEC §1-2)."""

from __future__ import annotations

from transformers import PretrainedConfig

POSITION_POLICIES = ("clamp", "none")


class LAMConfig(PretrainedConfig):
    """Configuration of a LAM encoder: a BERT body whose attention is the LAM mixer.

    BERT fields keep the teacher's names so its weights map one to one. LAM fields:
    `num_heads` heads of width `head_dim`, the last `num_backward_heads` of them reading
    the text backward; `conv_size` taps of depthwise convolution; retention biases
    initialised to logit(`fast_retention_init`) and logit(`slow_retention_init`); a
    resonance-flux MLP of width `flux_hidden` scaling slow retention by
    (1 - `flux_strength` * psi); `position_policy` for positions past the teacher's
    `max_position_embeddings` ("clamp": reuse the last one; "none": no absolute positions).
    """

    model_type = "lam"

    def __init__(
        self,
        vocab_size: int = 30522,
        hidden_size: int = 384,
        num_hidden_layers: int = 6,
        intermediate_size: int = 1536,
        hidden_act: str = "gelu",
        max_position_embeddings: int = 512,
        type_vocab_size: int = 2,
        layer_norm_eps: float = 1e-12,
        pad_token_id: int = 0,
        num_heads: int = 12,
        head_dim: int = 32,
        num_backward_heads: int = 6,
        conv_size: int = 4,
        qk_norm_eps: float = 1e-6,
        rms_norm_eps: float = 1e-6,
        fast_retention_init: float = 0.3,
        slow_retention_init: float = 0.85,
        flux_hidden: int = 16,
        flux_strength: float = 0.05,
        position_policy: str = "clamp",
        max_seq_length: int = 32768,
        chunk_size: int = 64,
        initializer_range: float = 0.02,
        **kwargs,
    ):
        super().__init__(pad_token_id=pad_token_id, **kwargs)
        if position_policy not in POSITION_POLICIES:
            raise ValueError(f"position_policy must be one of {POSITION_POLICIES}, got {position_policy!r}")
        if not 0 <= num_backward_heads <= num_heads:
            raise ValueError(f"num_backward_heads={num_backward_heads} must lie in [0, num_heads={num_heads}]")
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.layer_norm_eps = layer_norm_eps
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.num_backward_heads = num_backward_heads
        self.conv_size = conv_size
        self.qk_norm_eps = qk_norm_eps
        self.rms_norm_eps = rms_norm_eps
        self.fast_retention_init = fast_retention_init
        self.slow_retention_init = slow_retention_init
        self.flux_hidden = flux_hidden
        self.flux_strength = flux_strength
        self.position_policy = position_policy
        self.max_seq_length = max_seq_length
        self.chunk_size = chunk_size
        self.initializer_range = initializer_range

    @property
    def inner_size(self) -> int:
        """Width of the concatenated heads, num_heads * head_dim."""
        return self.num_heads * self.head_dim
