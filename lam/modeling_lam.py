"""The LAM encoder in plain PyTorch (SPEC §1-2), in one file that needs only torch and transformers.

This module travels inside every saved model directory (as `modeling_lam.py`, beside
`configuration_lam.py`, a copy of `lam/config.py`; see `lam.remote_code`), so the directory
loads with `AutoModel.from_pretrained(path, trust_remote_code=True)` or
`SentenceTransformer(path, trust_remote_code=True)` where `lam` is not installed. It must
therefore import nothing from `lam` but its configuration. The delta rule runs in its
chunkwise-parallel form (differentiable); `lam._torch_model` subclasses these modules with the
compiled token-scan kernel, fused CPU linears and token blocks.

Shapes: hidden states (B, L, d); masks (B, L), 1 for real tokens; per-head q, k, v (B, H, L, D)
and per-head gates (B, H, L).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput

from .config import LAMConfig  # a model directory has it as .configuration_lam (see lam.remote_code)


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


def l2_normalize(x: torch.Tensor, eps: float) -> torch.Tensor:
    """x / sqrt(|x|^2 + eps) over the last dimension."""
    return x * torch.rsqrt((x * x).sum(-1, keepdim=True) + eps)


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of hidden (B, L, d) over real tokens of attention_mask (B, L): (B, d)."""
    weights = attention_mask.to(hidden.dtype)[..., None]
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Sentence embeddings (B, d): `mean_pool` of hidden (B, L, d), L2-normalised."""
    return F.normalize(mean_pool(hidden, attention_mask), dim=-1)


def apply_linear(x: torch.Tensor, layer: nn.Module, activation: str = "none") -> torch.Tensor:
    """activation(layer(x)), activation "none", "gelu" (erf) or "silu"; any module (e.g. a LoRA wrapper)."""
    return ACTIVATIONS[activation](layer(x))


ACTIVATIONS = {"none": lambda x: x, "gelu": F.gelu, "silu": F.silu}


def reading_order(x: torch.Tensor, num_backward_heads: int, time_dim: int = 2) -> torch.Tensor:
    """Reverse time for the last `num_backward_heads` heads (dim 1); an involution."""
    if num_backward_heads == 0:
        return x
    split = x.shape[1] - num_backward_heads
    return torch.cat([x[:, :split], x[:, split:].flip(time_dim)], dim=1)


def _chunked_scan(q, k, v, beta, log_decay, read, chunk_size):
    """Forward-reading scan of M memories sharing q, k, v, beta.

    q, k, v: (B, H, L, D); beta: (B, H, L); log_decay, read: (B, H, M, L).
    Within a chunk of C tokens the delta-rule writes u solve (I + A) u = beta (v - gamma K S0),
    A[t, s] = beta_t (gamma_t / gamma_s) k_t.k_s for s < t (the WY/UT transform); S is
    carried across chunks. Returns sum over memories of read * S^T q: (B, H, L, D).
    """
    batch, heads, length, dk = k.shape
    dv = v.shape[-1]
    memories = log_decay.shape[2]
    pad = (-length) % chunk_size
    if pad:
        q, k, v = (F.pad(x, (0, 0, 0, pad)) for x in (q, k, v))
        beta, log_decay, read = (F.pad(x, (0, pad)) for x in (beta, log_decay, read))
    chunks = (length + pad) // chunk_size
    shape = (batch, heads, 1, chunks, chunk_size)
    q, k, v = q.reshape(*shape, dk), k.reshape(*shape, dk), v.reshape(*shape, dv)
    beta = beta.reshape(shape)
    cum = log_decay.reshape(batch, heads, memories, chunks, chunk_size).cumsum(-1)

    causal = torch.ones(chunk_size, chunk_size, dtype=torch.bool, device=k.device).tril()
    decay_matrix = torch.exp((cum[..., :, None] - cum[..., None, :]).masked_fill(~causal, float("-inf")))
    strict = decay_matrix.tril(-1)
    system = beta[..., :, None] * strict * (k @ k.transpose(-1, -2))
    system = system + torch.eye(chunk_size, dtype=k.dtype, device=k.device)
    gamma = cum.exp()
    write_v = torch.linalg.solve_triangular(
        system, (beta[..., None] * v).expand(-1, -1, memories, -1, -1, -1), upper=False, unitriangular=True
    )
    write_k = torch.linalg.solve_triangular(system, (beta * gamma)[..., None] * k, upper=False, unitriangular=True)
    attend = (q @ k.transpose(-1, -2)) * decay_matrix
    q_decayed = gamma[..., None] * q
    k_to_end = torch.exp(cum[..., -1:] - cum)[..., None] * k
    chunk_decay = gamma[..., -1, None, None]

    state = k.new_zeros(batch, heads, memories, dk, dv)
    outputs = []
    for n in range(chunks):
        u = write_v[:, :, :, n] - write_k[:, :, :, n] @ state
        outputs.append(q_decayed[:, :, :, n] @ state + attend[:, :, :, n] @ u)
        state = chunk_decay[:, :, :, n] * state + k_to_end[:, :, :, n].transpose(-1, -2) @ u
    out = torch.stack(outputs, dim=3).reshape(batch, heads, memories, chunks * chunk_size, dv)[..., :length, :]
    return (read[..., :length, None] * out).sum(2)


def delta_rule_chunked(q, k, v, beta, decay_fast, decay_slow, read_fast, read_slow, mask, num_backward_heads,
                       chunk_size=64):
    """Chunkwise-parallel form of the delta rule (differentiable); returns o (B, H, L, D), zero where masked."""
    heads = k.shape[1]
    real = mask.to(k.dtype)[:, None, :].expand(-1, heads, -1)
    beta = beta * real
    log_decay = torch.stack([torch.log(decay_fast), torch.log(decay_slow)], dim=2) * real[:, :, None]
    read = torch.stack([read_fast, read_slow], dim=2)

    out = _chunked_scan(
        *(reading_order(x, num_backward_heads) for x in (q, k, v, beta)),
        reading_order(log_decay, num_backward_heads, time_dim=3),
        reading_order(read, num_backward_heads, time_dim=3),
        chunk_size,
    )
    return reading_order(out, num_backward_heads) * real[..., None]


class LAMMixer(nn.Module):
    """The LAM mixer: (B, L, d) hidden states and a (B, L) mask to (B, L, d)."""

    linear = staticmethod(apply_linear)

    def __init__(self, config: LAMConfig):
        super().__init__()
        d, inner, heads = config.hidden_size, config.num_heads * config.head_dim, config.num_heads
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

    def project_inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The linear projections of x (B, T, d) that feed the delta rule: q, k and v side by side
        (B, T, 3 inner), before convolution, and the logits of the five per-token gates (B, T, 5, H)."""
        gate_logits = torch.stack([self.linear(x, proj) for proj in (
            self.beta_proj, self.fast_proj, self.slow_proj, self.read_fast_proj, self.read_slow_proj)], dim=2)
        return torch.cat([self.linear(x, proj) for proj in (self.q_proj, self.k_proj, self.v_proj)], -1), gate_logits

    def convolve_inputs(self, qkv: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """q, k, v (B, T, inner): SiLU of the directional convolutions of `project_inputs`' qkv
        (B, T, 3 inner) with masked tokens (real (B, T, 1) zero) set to zero."""
        backward_channels = self.config.num_backward_heads * self.config.head_dim
        return tuple(F.silu(directional_conv(h, conv, backward_channels))
                     for h, conv in zip((qkv * real).chunk(3, dim=-1), (self.q_conv, self.k_conv, self.v_conv)))

    def delta_rule_inputs(self, x: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """q, k, v (B, H, T, D) and the five gates (B, H, T) of a window x (B, T, d), real (B, T, 1):
        beta, fast and slow retention, fast and slow read weights."""
        return self.inputs_from_projections(*self.project_inputs(x), real)

    def inputs_from_projections(self, qkv: torch.Tensor, gate_logits: torch.Tensor,
                                real: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """`delta_rule_inputs` from `project_inputs`' qkv (B, T, 3 inner) and gate logits (B, T, 5, H)."""
        config = self.config
        batch, length, _ = qkv.shape
        q, k, v = (h.reshape(batch, length, config.num_heads, config.head_dim).transpose(1, 2)
                   for h in self.convolve_inputs(qkv, real))
        q = l2_normalize(q, config.qk_norm_eps)
        k = l2_normalize(k, config.qk_norm_eps)
        beta, fast, slow, read_fast, read_slow = torch.sigmoid(gate_logits).permute(2, 0, 3, 1)
        return q, k, v, beta, fast, slow * (1 - config.flux_strength * self.flux(k, v)), read_fast, read_slow

    def flux(self, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Resonance flux psi (B, H, T) in (0, 1): a two-layer SiLU MLP of [k; v] (B, H, T, 2D)."""
        hidden = self.linear(torch.cat([k, v], dim=-1), self.flux_in, "silu")
        return torch.sigmoid(self.linear(hidden, self.flux_out))[..., 0]

    def output_gate(self, x: torch.Tensor) -> torch.Tensor:
        """SiLU(output gate) (B, T, inner) of inputs x (B, T, d)."""
        return self.linear(x, self.gate_proj, "silu")

    def output(self, o: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        """Mixer output (B, T, d) from delta-rule reads o (B, H, T, D) and SiLU(output gate) (B, T, inner)."""
        o = o * torch.rsqrt((o * o).mean(-1, keepdim=True) + self.config.rms_norm_eps) * self.out_norm
        return self.linear(o.transpose(1, 2).reshape(gate.shape) * gate, self.o_proj)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        inputs = self.delta_rule_inputs(x, mask.to(x.dtype)[..., None])
        o = delta_rule_chunked(*inputs, mask, self.config.num_backward_heads, chunk_size=self.config.chunk_size)
        return self.output(o, self.output_gate(x))


class LAMLayer(nn.Module):
    """Post-LN block: h = LN(x + Mixer(x)); x' = LN(h + FFN(h))."""

    mixer_class = LAMMixer
    linear = staticmethod(apply_linear)

    def __init__(self, config: LAMConfig):
        super().__init__()
        self.mixer = self.mixer_class(config)
        self.mixer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.ffn_in = nn.Linear(config.hidden_size, config.intermediate_size)
        self.ffn_out = nn.Linear(config.intermediate_size, config.hidden_size)
        self.ffn_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def feed_forward(self, x: torch.Tensor, mixed: torch.Tensor) -> torch.Tensor:
        """The layer's output from its input x and the mixer's output, both (B, T, d)."""
        return self.ffn(self.mixer_norm(x + mixed))

    def ffn(self, h: torch.Tensor) -> torch.Tensor:
        """The layer's output from its feed-forward input h = LN(x + mixer output), (..., d)."""
        return self.ffn_norm(h + self.linear(self.linear(h, self.ffn_in, "gelu"), self.ffn_out))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.feed_forward(x, self.mixer(x, mask))


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
    """LAM encoder: token ids (B, L) and attention mask (B, L) to hidden states (B, L, d)."""

    layer_class = LAMLayer

    def __init__(self, config: LAMConfig):
        super().__init__(config)
        self.embeddings = LAMEmbeddings(config)
        self.layers = nn.ModuleList(self.layer_class(config) for _ in range(config.num_hidden_layers))
        self.post_init()

    def layer_options(self, layer: LAMLayer, hidden: torch.Tensor) -> dict:
        """Extra keyword arguments of `layer` for input `hidden` (none here; see lam._torch_model)."""
        return {}

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Last hidden states (B, L, d) of token ids and attention mask (B, L)."""
        x = self.embeddings(input_ids)
        for layer in self.layers:
            x = layer(x, attention_mask, **self.layer_options(layer, x))
        return x

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, return_dict=None, **kwargs):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        x = self.encode(input_ids, attention_mask)
        if return_dict is False:
            return (x,)
        return BaseModelOutput(last_hidden_state=x)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Sentence embeddings (B, d): `pool` of the last hidden states."""
        return pool(self.encode(input_ids, attention_mask), attention_mask)
