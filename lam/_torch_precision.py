"""Inference linears of the torch backend in a chosen compute precision.

`prepare_inference(model, precision)` gives each wide linear of a `lam._torch_model.LAMModel`
(the mixer's input projections, fused into one matmul, its output gate and output projection,
the feed-forward pair) an `InferenceLinear` that `lam._torch_model.linear` calls instead of the
module, and, where the compiled kernels are built, the q, k, v convolutions in one compiled
pass (`lam._cython.directional_conv_cython`). Inputs and outputs stay float32; only the matmul
changes:
  - "float32": oneDNN (`torch.ops.mkldnn._linear_pointwise`) with the activation fused;
  - "bfloat16": the same oneDNN op on bfloat16 inputs and weights (AVX-512 BF16 where the CPU
    has it), float32 accumulation, activation fused, result back to float32;
  - "int8": dynamically quantised (fbgemm, VNNI where the CPU has it): weights int8 per output
    channel, activations uint8 per tensor with a range measured on each call, int32 accumulation.
The delta rule, its tiny per-head flux MLP, the norms and pooling stay float32. Gradients never
reach these copies: `linear` uses them only with grad mode off.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from . import _cython
from .backends import check_compute_precision
from .cpu import cpu_flags
from .modeling_lam import ACTIVATIONS

# The ops' default overloads: calling the overload packets costs a few microseconds more per call.
_ONEDNN_LINEAR = getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None) \
    if torch.backends.mkldnn.is_available() else None
_ONEDNN_LINEAR = _ONEDNN_LINEAR.default if _ONEDNN_LINEAR is not None else None
_ONEDNN_ACTIVATIONS = {"none": "none", "gelu": "gelu", "silu": "swish"}


def onednn_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, activation: str) -> torch.Tensor:
    """activation(x @ weight.T + bias) through oneDNN, activation fused; x and weight of one dtype."""
    return _ONEDNN_LINEAR(x, weight, bias, _ONEDNN_ACTIVATIONS[activation], [], "none" if activation == "gelu" else "")


def onednn_usable(x: torch.Tensor) -> bool:
    return _ONEDNN_LINEAR is not None and x.device.type == "cpu"


def cpu_has_vnni() -> bool:
    """Whether the CPU has int8 dot-product instructions (AVX-512 VNNI or AVX-VNNI), read from /proc/cpuinfo."""
    return bool({"avx512_vnni", "avx_vnni"} & cpu_flags())


class InferenceLinear:
    """y = activation(x W^T + b) in `precision` for float32 x (..., in); returns float32 (..., out).

    weight (out, in) and bias (out,) are float32 copies taken at construction.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, precision: str):
        check_compute_precision(precision)
        weight = weight.detach().float().contiguous()
        bias = None if bias is None else bias.detach().float().contiguous()
        self.precision = precision
        if precision == "int8":
            if weight.device.type != "cpu":
                raise ValueError("compute_precision='int8' runs on the CPU only")
            self.packed = _pack_int8(weight, bias)
            # Without VNNI, fbgemm adds pairs of uint8 x int8 products in int16, which can saturate
            # unless activations keep to 7 bits.
            self.reduce_range = not cpu_has_vnni()
        else:
            dtype = torch.bfloat16 if precision == "bfloat16" else torch.float32
            self.weight = weight.to(dtype)
            self.bias = None if bias is None else bias.to(dtype)

    def __call__(self, x: torch.Tensor, activation: str = "none") -> torch.Tensor:
        if self.precision == "int8":
            return ACTIVATIONS[activation](torch.ops.quantized.linear_dynamic.default(x, self.packed, self.reduce_range))
        x = x.to(self.weight.dtype)
        if onednn_usable(x):
            y = onednn_linear(x, self.weight, self.bias, activation)
        else:
            y = ACTIVATIONS[activation](nn.functional.linear(x, self.weight, self.bias))
        return y.float()


def _pack_int8(weight: torch.Tensor, bias: torch.Tensor | None):
    """fbgemm's packed form of weight (out, in) quantised to int8 per output channel (symmetric)."""
    scales = (weight.abs().amax(dim=1) / 127).clamp(min=1e-12).double()
    zero_points = torch.zeros(weight.shape[0], dtype=torch.long)
    with warnings.catch_warnings():  # torch.ao's quantized tensors are deprecated, still the packed-weight API in 2.13
        warnings.simplefilter("ignore")
        quantized = torch.quantize_per_channel(weight, scales, zero_points, 0, torch.qint8)
        return torch.ops.quantized.linear_prepack(quantized, bias)


def fused_input_weights(mixer) -> tuple[torch.Tensor, torch.Tensor]:
    """The mixer's q, k, v and five gate projections as one (3 inner + 5 H, d) weight and bias, rows
    in the order `project_inputs` splits them (zero bias where a projection has none)."""
    layers = (mixer.q_proj, mixer.k_proj, mixer.v_proj, mixer.beta_proj, mixer.fast_proj, mixer.slow_proj,
              mixer.read_fast_proj, mixer.read_slow_proj)
    weight = torch.cat([layer.weight for layer in layers])
    bias = torch.cat([layer.bias if layer.bias is not None else layer.weight.new_zeros(layer.out_features)
                      for layer in layers])
    return weight, bias


def fused_convolution(mixer) -> tuple[np.ndarray, np.ndarray]:
    """The q, k, v convolutions side by side for `lam._cython.directional_conv_cython`: taps
    (K, 3 inner) float32 and the backward-reading channels (3 inner,) uint8."""
    config = mixer.config
    taps = torch.cat([mixer.q_conv, mixer.k_conv, mixer.v_conv]).detach().float().cpu().numpy()
    backward = np.arange(config.inner_size) >= (config.num_heads - config.num_backward_heads) * config.head_dim
    return np.ascontiguousarray(taps.T), np.tile(backward, 3).astype(np.uint8)


def prepare_inference(model, precision: str = "float32") -> None:
    """Attach `InferenceLinear`s in `precision` to `model`'s wide linears (see the module docstring).

    The copies are taken now: call it again after changing the weights.
    """
    check_compute_precision(precision)
    with torch.no_grad():
        for layer in model.layers:
            mixer = layer.mixer
            mixer.__dict__["fused_inputs"] = InferenceLinear(*fused_input_weights(mixer), precision)
            if _cython.AVAILABLE and mixer.q_conv.device.type == "cpu":
                mixer.__dict__["fused_convolution"] = fused_convolution(mixer)
            for module in (mixer.gate_proj, mixer.o_proj, layer.ffn_in, layer.ffn_out):
                module.__dict__["inference_linear"] = InferenceLinear(module.weight, module.bias, precision)
    model.compute_precision = precision
