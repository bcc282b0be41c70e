"""Fine-tuning with part of the model frozen: gradients reach every trainable tensor.

The compiled Cython kernel has no autograd, so the "auto" kernel must not pick it for a layer
that a gradient has to pass through, whether that need comes from the layer's input or from
the mixer's own parameters (frozen embeddings, frozen lower layers, adapters).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lam import _cython


class LoRALinear(nn.Module):
    """A LoRA-style adapter around a frozen Linear: base(x) + x A^T B^T."""

    def __init__(self, base: nn.Linear, rank: int = 2):
        super().__init__()
        self.base = base
        self.lora_a = nn.Parameter(0.1 * torch.randn(rank, base.in_features))
        self.lora_b = nn.Parameter(0.1 * torch.randn(base.out_features, rank))

    def forward(self, x):
        return self.base(x) + (x @ self.lora_a.T) @ self.lora_b.T


def freeze_embeddings(model):
    model.embeddings.requires_grad_(False)


def freeze_lower_layer(model):
    model.embeddings.requires_grad_(False)
    model.layers[0].requires_grad_(False)


def lora_on_mixers(model):
    model.requires_grad_(False)
    for layer in model.layers:
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            setattr(layer.mixer, name, LoRALinear(getattr(layer.mixer, name)))


def only_first_feed_forward(model):
    # No mixer parameter trains, but layer 1's mixer sits between layer 0's FFN and the loss.
    model.requires_grad_(False)
    model.layers[0].ffn_in.requires_grad_(True)


SETUPS = [freeze_embeddings, freeze_lower_layer, lora_on_mixers, only_first_feed_forward]


def loss_and_grads(model, ids, mask, target, kernel):
    model.form = kernel
    model.zero_grad()
    loss = (model(ids, mask).last_hidden_state * target).sum()
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad and p.grad is not None}


@pytest.mark.skipif(not _cython.AVAILABLE, reason="the failure mode needs the compiled kernel")
@pytest.mark.parametrize("setup", SETUPS, ids=lambda f: f.__name__)
def test_auto_kernel_gives_the_differentiable_gradients(make_tiny_model, setup):
    model = make_tiny_model()
    with torch.no_grad():
        assert model.resolve_form(torch.zeros(1, 2, 32)) == "cython"  # what inference uses
    torch.manual_seed(1)
    setup(model)
    rng = np.random.default_rng(0)
    ids = torch.from_numpy(rng.integers(1, model.config.vocab_size, (2, 11)))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    target = torch.randn(2, 11, model.config.hidden_size)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}

    reference = loss_and_grads(model, ids, mask, target, "chunk")
    auto = loss_and_grads(model, ids, mask, target, "auto")
    assert set(reference) == set(auto) == trainable
    for name in trainable:
        assert reference[name].abs().max() > 0, name
        # Layers that need no gradient may run the float32 token scan, the reference the chunkwise form.
        relative = ((auto[name] - reference[name]).norm() / reference[name].norm()).item()
        assert relative <= 1e-4, (name, relative)

    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    optimizer.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == trainable
    if setup is not only_first_feed_forward:
        assert any(".mixer." in n for n in trainable)


@pytest.mark.skipif(not _cython.AVAILABLE, reason="the compiled kernel is what inference should keep using")
def test_frozen_layers_still_run_the_fast_kernel_when_nothing_needs_their_gradient(make_tiny_model):
    model = make_tiny_model()
    freeze_lower_layer(model)
    x = torch.zeros(1, 3, 32)
    assert model.resolve_form(x, model.layers[0].mixer) == "cython"
    assert model.resolve_form(x, model.layers[1].mixer) == "chunk"
    assert model.resolve_form(x.requires_grad_(), model.layers[0].mixer) == "chunk"
