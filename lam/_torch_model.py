"""The LAM encoder in PyTorch (SPEC §1-2): BERT embeddings and FFNs around the LAM mixer."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput

from . import _cython
from ._torch_core import KERNELS, delta_rule_chunked, reading_order
from .config import LAMConfig
from .reference import delta_rule_reference
from .token_blocks import DEFAULT_BLOCK_TOKENS, block_layout


def directional_conv(x: torch.Tensor, weight: torch.Tensor, backward_channels: int) -> torch.Tensor:
    """Depthwise convolution along each channel's reading direction.

    x: (B, L, C); weight: (C, K). Tap K-1 is the current token; forward channels read
    the K-1 previous tokens, the last `backward_channels` channels the K-1 next ones.
    Written as K shifted multiply-adds in (B, L, C) layout: no transposes or flips.
    """
    size, length = weight.shape[1], x.shape[1]
    split = x.shape[2] - backward_channels
    forward = F.pad(x[..., :split], (0, 0, size - 1, 0))
    backward = F.pad(x[..., split:], (0, 0, 0, size - 1))
    out_forward = sum(weight[:split, j] * forward[:, j:j + length] for j in range(size))
    out_backward = sum(weight[split:, j] * backward[:, size - 1 - j:size - 1 - j + length] for j in range(size))
    return torch.cat([out_forward, out_backward], dim=-1)


def linear(x: torch.Tensor, layer: nn.Linear, activation: str = "none") -> torch.Tensor:
    """activation(layer(x)) with activation "none", "gelu" (erf) or "silu".

    CPU float32 inference goes through oneDNN with the activation fused: about twice the
    fp32 throughput of the default MKL path on the CPU measured (see benchmarks/README.md).
    """
    if (_ONEDNN_LINEAR is not None and x.device.type == "cpu" and x.dtype == torch.float32
            and not (torch.is_grad_enabled() and (x.requires_grad or layer.weight.requires_grad))):
        return _ONEDNN_LINEAR(x, layer.weight, layer.bias, _ONEDNN_ACTIVATIONS[activation], [],
                              "none" if activation == "gelu" else "")
    return _ACTIVATIONS[activation](F.linear(x, layer.weight, layer.bias))


_ONEDNN_LINEAR = getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None) \
    if torch.backends.mkldnn.is_available() else None
_ONEDNN_ACTIVATIONS = {"none": "none", "gelu": "gelu", "silu": "swish"}
_ACTIVATIONS = {"none": lambda x: x, "gelu": F.gelu, "silu": F.silu}


def l2_normalize(x: torch.Tensor, eps: float) -> torch.Tensor:
    """x / sqrt(|x|^2 + eps) over the last dimension."""
    return x * torch.rsqrt((x * x).sum(-1, keepdim=True) + eps)


class LAMMixer(nn.Module):
    """The LAM mixer: (B, L, d) hidden states and a (B, L) mask to (B, L, d)."""

    def __init__(self, config: LAMConfig):
        super().__init__()
        d, inner, heads = config.hidden_size, config.inner_size, config.num_heads
        self.config = config
        self.q_proj = nn.Linear(d, inner)
        self.k_proj = nn.Linear(d, inner)
        self.v_proj = nn.Linear(d, inner)
        self.q_conv = nn.Parameter(torch.zeros(inner, config.conv_size))
        self.k_conv = nn.Parameter(torch.zeros(inner, config.conv_size))
        self.v_conv = nn.Parameter(torch.zeros(inner, config.conv_size))
        self.beta_proj = nn.Linear(d, heads)
        self.fast_proj = nn.Linear(d, heads)
        self.slow_proj = nn.Linear(d, heads)
        self.flux_in = nn.Linear(2 * config.head_dim, config.flux_hidden)
        self.flux_out = nn.Linear(config.flux_hidden, 1)
        self.read_fast_proj = nn.Linear(d, heads, bias=False)
        self.read_slow_proj = nn.Linear(d, heads, bias=False)
        self.gate_proj = nn.Linear(d, inner, bias=False)
        self.out_norm = nn.Parameter(torch.ones(config.head_dim))
        self.o_proj = nn.Linear(inner, d)

    def reset_lam_parameters(self) -> None:
        """SPEC §2 initialisation of everything the teacher does not provide."""
        std = self.config.initializer_range
        for conv in (self.q_conv, self.k_conv, self.v_conv):
            nn.init.zeros_(conv)
            nn.init.ones_(conv[:, -1])
        for linear in (self.beta_proj, self.fast_proj, self.slow_proj, self.flux_in, self.flux_out,
                       self.read_fast_proj, self.read_slow_proj, self.gate_proj):
            nn.init.normal_(linear.weight, std=std)
            if linear.bias is not None:
                nn.init.zeros_(linear.bias)
        logit = lambda p: math.log(p / (1 - p))  # noqa: E731
        nn.init.constant_(self.fast_proj.bias, logit(self.config.fast_retention_init))
        nn.init.constant_(self.slow_proj.bias, logit(self.config.slow_retention_init))
        nn.init.ones_(self.out_norm)

    def gates(self, x, k, v):
        """Per-token scalars (B, H, L): beta, fast and slow retention, fast and slow read weights."""
        per_head = lambda proj: torch.sigmoid(linear(x, proj)).transpose(1, 2)  # noqa: E731
        flux = torch.sigmoid(linear(linear(torch.cat([k, v], dim=-1), self.flux_in, "silu"), self.flux_out))[..., 0]
        slow = per_head(self.slow_proj) * (1 - self.config.flux_strength * flux)
        return (per_head(self.beta_proj), per_head(self.fast_proj), slow,
                per_head(self.read_fast_proj), per_head(self.read_slow_proj))

    def delta_rule_inputs(self, x: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """q, k, v (B, H, T, D) and the five gates (B, H, T) of a window x (B, T, d), real (B, T, 1)."""
        config = self.config
        batch, length, _ = x.shape
        backward_channels = config.num_backward_heads * config.head_dim

        def heads(proj, conv):
            h = F.silu(directional_conv(linear(x, proj) * real, conv, backward_channels))
            return h.view(batch, length, config.num_heads, config.head_dim).transpose(1, 2)

        q = l2_normalize(heads(self.q_proj, self.q_conv), config.qk_norm_eps)
        k = l2_normalize(heads(self.k_proj, self.k_conv), config.qk_norm_eps)
        v = heads(self.v_proj, self.v_conv)
        return (q, k, v, *self.gates(x, k, v))

    def output(self, o: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Mixer output (B, T, d) from delta-rule reads o (B, H, T, D) and inputs x (B, T, d)."""
        config = self.config
        o = o * torch.rsqrt((o * o).mean(-1, keepdim=True) + config.rms_norm_eps) * self.out_norm
        o = o.transpose(1, 2).reshape(x.shape[0], x.shape[1], config.inner_size)
        return linear(o * linear(x, self.gate_proj, "silu"), self.o_proj)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, kernel: str = "chunk",
                block_tokens: int | None = None) -> torch.Tensor:
        """Token-wise parts run in blocks of about `block_tokens` tokens (all at once if None)."""
        length = x.shape[1]
        real = mask.to(x.dtype)[..., None]
        blocks = token_blocks(x.shape[0], length, block_tokens)
        halo = self.config.conv_size - 1

        def inputs_of_block(start, stop):
            # The convolution reads up to `halo` tokens either side of the block.
            lo, hi = max(0, start - halo), min(length, stop + halo)
            parts = self.delta_rule_inputs(x[:, lo:hi], real[:, lo:hi])
            return tuple(p.narrow(2, start - lo, stop - start) for p in parts)

        inputs = over_token_blocks(inputs_of_block, blocks, length, time_dim=2)
        o = run_delta_rule(kernel, *inputs, mask, self.config)
        del inputs
        return over_token_blocks(lambda start, stop: (self.output(o[:, :, start:stop], x[:, start:stop]),),
                                 blocks, length, time_dim=1)[0]


def token_blocks(batch: int, length: int, block_tokens: int | None) -> list[tuple[int, int]]:
    """(start, stop) ranges of the blocks of `lam.token_blocks.block_layout`."""
    count, size = block_layout(batch, length, block_tokens)
    return [(i * size, min((i + 1) * size, length)) for i in range(count)]


def over_token_blocks(fn, blocks, length: int, time_dim: int) -> tuple[torch.Tensor, ...]:
    """fn(start, stop) -> tuple of tensors for each block, joined along `time_dim` (length `length`)."""
    if len(blocks) == 1:
        return fn(*blocks[0])
    outputs = None
    for start, stop in blocks:
        parts = fn(start, stop)
        if outputs is None:
            outputs = tuple(p.new_empty(p.shape[:time_dim] + (length,) + p.shape[time_dim + 1:]) for p in parts)
        for out, part in zip(outputs, parts):
            out.narrow(time_dim, start, stop - start).copy_(part)
    return outputs


def run_delta_rule(kernel, q, k, v, beta, decay_fast, decay_slow, read_fast, read_slow, mask, config):
    """Dispatch the delta rule to one of its forms; see `lam.reference` for shapes."""
    args = (q, k, v, beta, decay_fast, decay_slow, read_fast, read_slow, mask, config.num_backward_heads)
    if kernel == "chunk":
        return delta_rule_chunked(*args, chunk_size=config.chunk_size)
    if kernel == "cython":
        return _cython.delta_rule_cython(*args).to(q.dtype)
    if kernel == "reference":
        out = delta_rule_reference(*(a.detach().cpu().numpy() for a in args[:-1]), args[-1])
        return torch.from_numpy(out).to(q)
    raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")


class LAMLayer(nn.Module):
    """Post-LN block: h = LN(x + Mixer(x)); x' = LN(h + FFN(h))."""

    def __init__(self, config: LAMConfig):
        super().__init__()
        self.mixer = LAMMixer(config)
        self.mixer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.ffn_in = nn.Linear(config.hidden_size, config.intermediate_size)
        self.ffn_out = nn.Linear(config.intermediate_size, config.hidden_size)
        self.ffn_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, x, mask, kernel="chunk", block_tokens=None):
        mixed = self.mixer(x, mask, kernel, block_tokens)

        def block(start, stop):
            h = self.mixer_norm(x[:, start:stop] + mixed[:, start:stop])
            return (self.ffn_norm(h + linear(linear(h, self.ffn_in, "gelu"), self.ffn_out)),)

        return over_token_blocks(block, token_blocks(x.shape[0], x.shape[1], block_tokens), x.shape[1], time_dim=1)[0]


class LAMEmbeddings(nn.Module):
    """Word + token type 0 + position (per `config.position_policy`), then LayerNorm."""

    def __init__(self, config: LAMConfig):
        super().__init__()
        self.config = config
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        if config.position_policy != "none":
            self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.word_embeddings(input_ids) + self.token_type_embeddings.weight[0]
        if self.config.position_policy == "clamp":
            positions = torch.arange(input_ids.shape[1], device=input_ids.device)
            x = x + self.position_embeddings(positions.clamp(max=self.config.max_position_embeddings - 1))
        return self.layer_norm(x)


class LAMPreTrainedModel(PreTrainedModel):
    config_class = LAMConfig
    base_model_prefix = "lam"
    main_input_name = "input_ids"

    def _init_weights(self, module):
        # Module.apply visits children first, so a mixer's own reset runs after its Linears'.
        std = self.config.initializer_range
        if isinstance(module, LAMMixer):
            module.reset_lam_parameters()
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=std)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


class LAMModel(LAMPreTrainedModel):
    """LAM encoder: token ids (B, L) and attention mask (B, L) to hidden states (B, L, d).

    `kernel` selects the delta-rule form: "auto" (the Cython token scan for CPU inference
    when it is built and no gradient is needed, else the chunkwise form), "cython",
    "chunk" or "reference" (float64 token loop, for tests). `block_tokens` bounds the
    tokens (over the batch) that token-wise layers process at once; None processes all.
    """

    def __init__(self, config: LAMConfig):
        super().__init__(config)
        self.embeddings = LAMEmbeddings(config)
        self.layers = nn.ModuleList(LAMLayer(config) for _ in range(config.num_hidden_layers))
        self.kernel = "auto"
        self.block_tokens = DEFAULT_BLOCK_TOKENS
        self.post_init()

    def resolve_kernel(self, hidden: torch.Tensor) -> str:
        if self.kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {self.kernel!r}")
        if self.kernel != "auto":
            return self.kernel
        cython_usable = (
            _cython.AVAILABLE and hidden.device.type == "cpu" and hidden.dtype == torch.float32
            and not (torch.is_grad_enabled() and hidden.requires_grad)
        )
        return "cython" if cython_usable else "chunk"

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, return_dict=None, **kwargs):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        x = self.embeddings(input_ids)
        kernel = self.resolve_kernel(x)
        for layer in self.layers:
            x = layer(x, attention_mask, kernel, self.block_tokens)
        if return_dict is False:
            return (x,)
        return BaseModelOutput(last_hidden_state=x)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Sentence embeddings (B, d): masked mean of the last hidden states, L2-normalised."""
        hidden = self.forward(input_ids, attention_mask).last_hidden_state
        return F.normalize(mean_pool(hidden, attention_mask), dim=-1)


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of hidden (B, L, d) over real tokens of attention_mask (B, L): (B, d)."""
    weights = attention_mask.to(hidden.dtype)[..., None]
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
