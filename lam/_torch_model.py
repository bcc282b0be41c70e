"""The LAM encoder in PyTorch (SPEC §1-2), fast paths on top of the plain model of `lam.modeling_lam`:
the compiled Cython token scan for CPU inference, oneDNN linears with fused activations, and
token blocks that bound the memory of long inputs. Same modules, same parameter names.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel

from . import _cython
from . import modeling_lam as plain
from ._torch_core import MODEL_FORMS, delta_rule
from ._torch_precision import onednn_linear, onednn_usable
from .config import LAMConfig
from .modeling_lam import directional_conv, l2_normalize, mean_pool, pool  # noqa: F401  (re-exported)
from .reference import DeltaRuleInputs
from .remote_code import AUTO_MAP, write_remote_code
from .token_blocks import DEFAULT_BLOCK_TOKENS, block_layout


def linear(x: torch.Tensor, layer: nn.Module, activation: str = "none") -> torch.Tensor:
    """activation(layer(x)) with activation "none", "gelu" (erf) or "silu".

    With grad mode off, a layer given an inference copy by `lam._torch_precision.prepare_inference`
    runs that copy (its compute precision). Otherwise CPU float32 inference through a plain
    `nn.Linear` goes through oneDNN with the activation fused: about twice the fp32 throughput
    of the default MKL path on the CPU measured (see benchmarks/README.md). Anything else
    (gradients, adapters wrapping the layer) calls the layer.
    """
    if not torch.is_grad_enabled():
        prepared = layer.__dict__.get("inference_linear")
        if prepared is not None:
            return prepared(x, activation)
    if (onednn_usable(x) and type(layer) is nn.Linear and x.dtype == torch.float32
            and not (torch.is_grad_enabled() and (x.requires_grad or layer.weight.requires_grad))):
        return onednn_linear(x, layer.weight, layer.bias, activation)
    return plain.apply_linear(x, layer, activation)


class LAMMixer(plain.LAMMixer):
    """The LAM mixer with a choice of delta-rule form and token blocks."""

    linear = staticmethod(linear)

    def project_inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """As `lam.modeling_lam.LAMMixer.project_inputs`, in one matmul when the mixer has a fused
        inference copy (`lam._torch_precision.prepare_inference`) and grad mode is off."""
        fused = self.__dict__.get("fused_inputs")
        if fused is None or torch.is_grad_enabled():
            return super().project_inputs(x)
        projected = fused(x)
        split = 3 * self.config.inner_size
        return projected[..., :split], projected[..., split:].unflatten(-1, (5, self.config.num_heads))

    def convolve_inputs(self, qkv: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """As the plain model's (same values); with a prepared fused convolution and grad mode off,
        q, k and v are convolved in one compiled pass."""
        fused = self.__dict__.get("fused_convolution")
        if fused is None or torch.is_grad_enabled() or qkv.device.type != "cpu":
            return super().convolve_inputs(qkv, real)
        return F.silu(_cython.directional_conv_cython(qkv, *fused, real[..., 0])).chunk(3, dim=-1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, form: str = "chunk",
                block_tokens: int | None = None, packed: PackedTokens | None = None) -> torch.Tensor:
        """Token-wise parts run in blocks of about `block_tokens` tokens (all at once if None), or,
        given `packed`, on x (1, N, d), the real tokens of the batch that `mask` (B, L) describes."""
        real = mask.to(x.dtype)[..., None]
        options = {"chunk_size": self.config.chunk_size} if form == "chunk" else {}
        if packed is not None:
            qkv, gate_logits = self.project_inputs(x)
            inputs = DeltaRuleInputs(*self.inputs_from_projections(packed.unpack(qkv), packed.unpack(gate_logits),
                                                                   real), mask)
            o = delta_rule(form, inputs, self.config.num_backward_heads, **options)
            return self.output(packed.pack(o.transpose(1, 2)).transpose(1, 2), self.output_gate(x))
        length = x.shape[1]
        blocks = token_blocks(x.shape[0], length, block_tokens)
        halo = self.config.conv_size - 1

        def inputs_of_block(start, stop):
            # The convolution reads up to `halo` tokens either side of the block.
            lo, hi = max(0, start - halo), min(length, stop + halo)
            parts = self.delta_rule_inputs(x[:, lo:hi], real[:, lo:hi])
            return tuple(p.narrow(2, start - lo, stop - start) for p in parts)

        inputs = DeltaRuleInputs(*map_token_blocks(inputs_of_block, blocks, length, time_dim=2), mask)
        o = delta_rule(form, inputs, self.config.num_backward_heads, **options)
        del inputs
        return map_token_blocks(lambda start, stop: (self.output(o[:, :, start:stop], self.output_gate(x[:, start:stop])),),
                                blocks, length, time_dim=1)[0]


class PackedTokens:
    """The real tokens of a padded batch (mask (B, L)) as one pseudo-sequence of N tokens, so that
    token-wise layers (projections, gates, norms, FFN: most of a short batch's time) skip the padding.

    `pack` takes (B, L, ...) to (1, N, ...), real tokens in row order; `unpack` does the inverse,
    zeros where the mask is 0.
    """

    def __init__(self, mask: torch.Tensor):
        self.shape = tuple(mask.shape)
        self.rows = mask.reshape(-1).nonzero().squeeze(1)

    def __len__(self) -> int:
        return len(self.rows)

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(-1, *x.shape[2:]).index_select(0, self.rows)[None]

    def unpack(self, x: torch.Tensor) -> torch.Tensor:
        out = x.new_zeros(self.shape[0] * self.shape[1], *x.shape[2:])
        return out.index_copy_(0, self.rows, x[0]).unflatten(0, self.shape)


def token_blocks(batch: int, length: int, block_tokens: int | None) -> list[tuple[int, int]]:
    """(start, stop) ranges of the blocks of `lam.token_blocks.block_layout`."""
    count, size = block_layout(batch, length, block_tokens)
    return [(i * size, min((i + 1) * size, length)) for i in range(count)]


def map_token_blocks(fn, blocks, length: int, time_dim: int) -> tuple[torch.Tensor, ...]:
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


class LAMLayer(plain.LAMLayer):
    """Post-LN block with the fast mixer; the feed-forward part also runs in token blocks."""

    mixer_class = LAMMixer
    linear = staticmethod(linear)

    def forward(self, x, mask, form="chunk", block_tokens=None, packed=None):
        mixed = self.mixer(x, mask, form, block_tokens, packed)
        if packed is not None:
            return self.feed_forward(x, mixed)
        return map_token_blocks(lambda start, stop: (self.feed_forward(x[:, start:stop], mixed[:, start:stop]),),
                                token_blocks(x.shape[0], x.shape[1], block_tokens), x.shape[1], time_dim=1)[0]


class LAMModel(plain.LAMModel):
    """LAM encoder: token ids (B, L) and attention mask (B, L) to hidden states (B, L, d).

    `form` selects the delta-rule form: "auto" (per layer, the Cython token scan for CPU
    inference when it is built and no gradient has to flow through the layer, else the
    chunkwise form), "cython", "chunk" or "reference" (float64 token loop, for tests).
    `block_tokens` bounds the tokens (over the batch) that token-wise layers process at
    once; None processes all. With `pack_tokens` (default), inference on a padded batch that
    fits one token block runs the token-wise layers on its real tokens only (`PackedTokens`);
    hidden states at padding are then zero.
    """

    layer_class = LAMLayer

    def __init__(self, config: LAMConfig):
        super().__init__(config)
        self.form = "auto"
        self.block_tokens = DEFAULT_BLOCK_TOKENS
        self.pack_tokens = True

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        packed = self.packed_tokens(attention_mask)
        if packed is None:
            return super().encode(input_ids, attention_mask)
        x = packed.pack(self.embeddings(input_ids))
        for layer in self.layers:
            x = layer(x, attention_mask, self.resolve_form(x, layer.mixer), packed=packed)
        return packed.unpack(x)

    def packed_tokens(self, attention_mask: torch.Tensor) -> PackedTokens | None:
        """The batch's real tokens when packing applies: `pack_tokens`, grad mode off, one token
        block and some padding; else None."""
        batch, length = attention_mask.shape
        if (not self.pack_tokens or torch.is_grad_enabled() or batch == 1
                or block_layout(batch, length, self.block_tokens)[0] > 1):
            return None
        packed = PackedTokens(attention_mask)
        return packed if len(packed) < batch * length else None

    @property
    def kernel(self) -> str:
        """Deprecated name of `form`."""
        warnings.warn("LAMModel.kernel is deprecated; use LAMModel.form", DeprecationWarning, stacklevel=2)
        return self.form

    @kernel.setter
    def kernel(self, form: str) -> None:
        warnings.warn("LAMModel.kernel is deprecated; use LAMModel.form", DeprecationWarning, stacklevel=2)
        self.form = form

    def resolve_form(self, hidden: torch.Tensor, mixer: nn.Module | None = None) -> str:
        """The delta-rule form for a layer whose `mixer` (None: any mixer) reads `hidden`.

        The Cython kernel has no autograd, so "auto" takes it only when no gradient is
        needed: grad mode off, or neither the input nor any of the mixer's parameters
        (adapters included) requires one.
        """
        if self.form not in MODEL_FORMS:
            raise ValueError(f"form must be one of {MODEL_FORMS}, got {self.form!r}")
        if self.form != "auto":
            return self.form
        parameters = mixer.parameters() if mixer is not None else self.parameters()
        needs_grad = torch.is_grad_enabled() and (hidden.requires_grad or any(p.requires_grad for p in parameters))
        cython_usable = (_cython.AVAILABLE and hidden.device.type == "cpu" and hidden.dtype == torch.float32
                         and not needs_grad)
        return "cython" if cython_usable else "chunk"

    def layer_options(self, layer: LAMLayer, hidden: torch.Tensor) -> dict:
        return {"form": self.resolve_form(hidden, layer.mixer), "block_tokens": self.block_tokens}

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`, plus the plain modeling code (loads without `lam`)."""
        self.config.auto_map = dict(AUTO_MAP)
        super().save_pretrained(save_directory, *args, **kwargs)
        write_remote_code(save_directory)


AutoConfig.register("lam", LAMConfig, exist_ok=True)
AutoModel.register(LAMConfig, LAMModel, exist_ok=True)
