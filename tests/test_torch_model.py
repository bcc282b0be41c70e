"""The torch model: kernel forms agree, batch invariance, save/load round trips, Auto classes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lam
from lam import LAMModel
from lam._torch_model import mean_pool

KERNELS = ["chunk", "cython"]


def hidden_states(model, ids, mask, kernel, dtype=torch.float32):
    model = model.to(dtype)
    model.form = kernel
    with torch.no_grad():
        return model(ids, mask).last_hidden_state.double()


def embeddings(model, ids, mask, kernel, dtype=torch.float32):
    model = model.to(dtype)
    model.form = kernel
    with torch.no_grad():
        return model.embed(ids, mask).double()


def padded_batch(lengths, vocab, seed=0):
    rng = np.random.default_rng(seed)
    ids = np.zeros((len(lengths), max(lengths)), dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, n in enumerate(lengths):
        ids[row, :n] = rng.integers(1, vocab, n)
        mask[row, :n] = 1
    return torch.from_numpy(ids), torch.from_numpy(mask)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("policy", ["clamp", "none"])
def test_float32_embeddings_match_float64_reference_model(make_tiny_model, kernel, policy):
    model = make_tiny_model(position_policy=policy)
    ids, mask = padded_batch([23, 5, 1, 17], model.config.vocab_size)
    reference = embeddings(model, ids, mask, "reference", torch.float64)
    assert (embeddings(model, ids, mask, kernel) - reference).abs().max().item() <= 1e-5


def test_float64_chunk_model_matches_reference_model(make_tiny_model):
    model = make_tiny_model()
    ids, mask = padded_batch([23, 5, 1, 17], model.config.vocab_size)
    reference = hidden_states(model, ids, mask, "reference", torch.float64)
    chunk = hidden_states(model, ids, mask, "chunk", torch.float64)
    assert (chunk - reference)[mask.bool()].abs().max().item() <= 1e-10


@pytest.mark.parametrize("kernel", KERNELS)
def test_embedding_is_independent_of_batch_composition(make_tiny_model, kernel):
    model = make_tiny_model()
    ids, mask = padded_batch([40, 9, 26], model.config.vocab_size, seed=3)
    model.form = kernel
    with torch.no_grad():
        together = model.embed(ids, mask)
        alone = torch.cat([model.embed(ids[i : i + 1, : int(mask[i].sum())], mask[i : i + 1, : int(mask[i].sum())])
                           for i in range(len(ids))])
    assert (together - alone).abs().max().item() <= 1e-6


@pytest.mark.parametrize("block_tokens", [4, 12, 40, 92])
def test_token_blocks_match_the_unblocked_model(make_tiny_model, block_tokens):
    # 4 rows: blocks of 1, 3 (shorter than the convolution's reach), 10 and 23 tokens.
    model = make_tiny_model()
    ids, mask = padded_batch([23, 5, 1, 17], model.config.vocab_size)
    real = mask.bool()
    unblocked = {(kernel, dtype): hidden_states(model, ids, mask, kernel, dtype)
                 for kernel, dtype in [("reference", torch.float64), ("cython", torch.float32)]}
    model.block_tokens = block_tokens
    for kernel, dtype in [("reference", torch.float64), ("chunk", torch.float64)]:
        blocked = hidden_states(model, ids, mask, kernel, dtype)
        assert (blocked - unblocked["reference", torch.float64])[real].abs().max().item() <= 1e-10
    blocked = hidden_states(model, ids, mask, "cython", torch.float32)
    assert (blocked - unblocked["cython", torch.float32])[real].abs().max().item() <= 1e-5


@pytest.mark.parametrize("kernel, dtype, tolerance", [("reference", torch.float64, 1e-10),
                                                      ("chunk", torch.float64, 1e-10),
                                                      ("cython", torch.float32, 1e-5)])
def test_packed_tokens_match_the_padded_model(make_tiny_model, kernel, dtype, tolerance):
    model = make_tiny_model()
    ids, mask = padded_batch([23, 5, 1, 17], model.config.vocab_size, seed=7)
    real = mask.bool()
    model.pack_tokens = False
    padded = hidden_states(model, ids, mask, kernel, dtype)
    model.pack_tokens = True
    with torch.no_grad():
        assert len(model.packed_tokens(mask)) == 46
    packed = hidden_states(model, ids, mask, kernel, dtype)
    assert (packed - padded)[real].abs().max().item() <= tolerance
    assert packed[~real].abs().max().item() == 0.0


def test_packing_applies_only_to_padded_inference_in_one_block(make_tiny_model):
    model = make_tiny_model()
    ids, mask = padded_batch([23, 5, 1, 17], model.config.vocab_size)
    with torch.no_grad():
        assert model.packed_tokens(mask) is not None
        assert model.packed_tokens(torch.ones(4, 23, dtype=torch.long)) is None   # no padding
        assert model.packed_tokens(mask[:1]) is None                               # one text
        model.block_tokens = 40
        assert model.packed_tokens(mask) is None                                   # several token blocks
        model.block_tokens, model.pack_tokens = None, False
        assert model.packed_tokens(mask) is None
    model.pack_tokens = True
    assert model.packed_tokens(mask) is None                                       # gradients flow


def test_token_blocks_give_the_same_gradients(make_tiny_model):
    model = make_tiny_model().double().train()
    model.form = "chunk"
    ids, mask = padded_batch([12, 7], model.config.vocab_size)
    grads = {}
    for block_tokens in (None, 6):
        model.zero_grad()
        model.block_tokens = block_tokens
        model(ids, mask).last_hidden_state.pow(2).mean().backward()
        grads[block_tokens] = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    assert (grads[None] - grads[6]).abs().max().item() <= 1e-10


def test_cython_and_pure_torch_paths_agree_on_the_converted_teacher(teacher_lam_dir):
    model = LAMModel.from_pretrained(teacher_lam_dir).eval()
    ids, mask = padded_batch([70, 12, 3], model.config.vocab_size, seed=5)
    chunk = hidden_states(model, ids, mask, "chunk")
    cython = hidden_states(model, ids, mask, "cython")
    assert (chunk - cython)[mask.bool()].abs().max().item() <= 1e-5


def test_auto_kernel_uses_cython_for_inference_and_chunk_for_training(make_tiny_model):
    model = make_tiny_model()
    x = torch.zeros(1, 2, 32)
    with torch.no_grad():
        assert model.resolve_form(x) == "cython"
    assert model.resolve_form(x.requires_grad_()) == "chunk"


def test_kernel_is_a_deprecated_alias_of_form(make_tiny_model):
    model = make_tiny_model()
    with pytest.warns(DeprecationWarning, match="LAMModel.form"):
        model.kernel = "reference"
    assert model.form == "reference"
    with pytest.warns(DeprecationWarning, match="LAMModel.form"):
        assert model.kernel == "reference"


def test_chunk_form_trains(make_tiny_model):
    model = make_tiny_model().train()
    model.form = "chunk"
    ids, mask = padded_batch([12, 7], model.config.vocab_size)
    loss = model(ids, mask).last_hidden_state.pow(2).mean()
    loss.backward()
    grads = [p.grad for p in model.layers[0].mixer.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_save_and_load_round_trip_is_exact(make_tiny_model, tmp_path):
    model = make_tiny_model()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    loaded = LAMModel.from_pretrained(tmp_path).eval()
    ids, mask = padded_batch([9, 4], model.config.vocab_size)
    assert torch.equal(hidden_states(model, ids, mask, "chunk"), hidden_states(loaded, ids, mask, "chunk"))


def test_saved_directory_loads_with_transformers_auto_classes(teacher_lam_dir):
    from transformers import AutoConfig, AutoModel

    assert lam.LAMConfig is type(AutoConfig.from_pretrained(teacher_lam_dir))
    auto = AutoModel.from_pretrained(teacher_lam_dir).eval()
    assert isinstance(auto, LAMModel)
    ours = lam.LAM(teacher_lam_dir, backend="torch")
    ids = torch.tensor([[101, 1037, 4937, 102]])
    with torch.no_grad():
        pooled = torch.nn.functional.normalize(mean_pool(auto(ids).last_hidden_state, torch.ones_like(ids)), dim=-1)
    expected = ours.encode("a cat")
    np.testing.assert_allclose(pooled[0].numpy(), expected, atol=1e-6)


def test_conversion_copies_teacher_tensors(teacher_lam_dir):
    from safetensors.numpy import load_file

    from lam.building import teacher_name_map
    from lam.teacher import teacher_dir

    ours = load_file(str(teacher_lam_dir / "model.safetensors"))
    theirs = load_file(str(teacher_dir() / "model.safetensors"))
    config = lam.LAMConfig.from_pretrained(teacher_lam_dir)
    for mine, teacher_name in teacher_name_map(config).items():
        np.testing.assert_array_equal(ours[mine], theirs[teacher_name])
    assert ours["layers.0.mixer.q_conv"][:, -1].min() == 1.0
