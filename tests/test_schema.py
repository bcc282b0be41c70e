"""`lam.schema` is the one declaration of LAM's tensors: it matches the torch model, the JAX
pytree and the teacher, and conversion torch -> JAX -> torch returns every tensor bit for bit."""

from __future__ import annotations

import jax
import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from lam import building, conversion, schema
from lam._torch_model import LAMModel
from lam.config import LAMHyperparameters, pretrained_config

CONFIGS = {
    "clamp": LAMHyperparameters(hidden_size=32, num_hidden_layers=2, intermediate_size=64, num_heads=4, head_dim=8,
                                num_backward_heads=1, vocab_size=50, max_position_embeddings=24, flux_hidden=6),
    "none": LAMHyperparameters(hidden_size=24, num_hidden_layers=1, intermediate_size=40, num_heads=3, head_dim=8,
                               num_backward_heads=3, vocab_size=40, position_policy="none", conv_size=3),
}


def torch_model(config: LAMHyperparameters, seed: int = 0) -> LAMModel:
    """A torch model with every tensor random (no structure for a layout mistake to hide behind)."""
    torch.manual_seed(seed)
    model = LAMModel(pretrained_config(config))
    with torch.no_grad():
        for tensor in model.state_dict().values():
            tensor.normal_()
    return model


@pytest.mark.parametrize("policy", CONFIGS)
def test_schema_is_the_torch_models_state_dict(policy):
    config = CONFIGS[policy]
    state = torch_model(config).state_dict()
    declared = schema.parameters(config)
    assert [p.name for p in declared] == list(state)
    for parameter in declared:
        tensor = state[parameter.name]
        assert tuple(tensor.shape) == parameter.shape and str(tensor.dtype) == f"torch.{parameter.dtype}", parameter.name


@pytest.mark.parametrize("policy", CONFIGS)
def test_torch_to_jax_to_torch_is_bit_exact(policy):
    config = CONFIGS[policy]
    model = torch_model(config, seed=1)
    tensors = {name: t.numpy() for name, t in model.state_dict().items()}
    params = jax.device_put(conversion.params_from_torch(tensors, config))
    for parameter in schema.parameters(config):  # each tensor sits where the schema says, in its layout
        leaf = conversion.leaf_at(params, parameter.path)
        assert isinstance(leaf, jax.Array) and leaf.dtype == np.float32
        if parameter.columns is None:
            expected = tensors[parameter.name].T if parameter.transposed else tensors[parameter.name]
            assert np.array_equal(np.asarray(leaf), expected), parameter.name
    back = conversion.torch_from_params(jax.tree.map(np.asarray, params), config)
    reloaded = LAMModel(pretrained_config(config))
    reloaded.load_state_dict({name: torch.tensor(value) for name, value in back.items()}, strict=True)
    for name, value in model.state_dict().items():
        assert torch.equal(reloaded.state_dict()[name], value), name


def test_initial_tensors_follow_spec_and_copy_the_teacher(tmp_path):
    config = CONFIGS["clamp"]
    rng = np.random.default_rng(0)
    teacher = {theirs: rng.standard_normal(p.shape).astype(np.float32)
               for p in schema.parameters(config) if p.init == "teacher" for theirs in [p.teacher]}
    save_file(teacher, str(tmp_path / "teacher.safetensors"))
    tensors = building.initial_tensors(config, tmp_path / "teacher.safetensors", seed=3)
    assert all(np.array_equal(building.initial_tensors(config, tmp_path / "teacher.safetensors", seed=3)[n], t)
               for n, t in tensors.items())
    # SPEC §2 as the torch model initialises itself: every deterministic tensor equal, bit for bit.
    torch_init = LAMModel(pretrained_config(config)).state_dict()
    for parameter in schema.parameters(config):
        value = tensors[parameter.name]
        assert value.dtype == np.float32 and value.shape == parameter.shape
        if parameter.init == "teacher":
            assert np.array_equal(value, teacher[parameter.teacher]), parameter.name
        elif parameter.init == "normal":
            assert 0.5 < value.std() / config.initializer_range < 1.5 or value.size < 8, parameter.name
        else:
            assert np.array_equal(value, torch_init[parameter.name].numpy()), parameter.name
    assert tensors["layers.1.mixer.fast_proj.bias"][0] == np.float32(np.log(0.3 / 0.7))
    save_file({**teacher, "encoder.layer.0.output.dense.bias": np.zeros(3, np.float32)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ValueError, match="teacher tensor"):
        building.initial_tensors(config, tmp_path / "bad.safetensors")
