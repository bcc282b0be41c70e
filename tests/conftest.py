"""Shared fixtures: an isolated model cache, a LAM directory converted from the teacher, tiny configs."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def lam_cache(tmp_path_factory):
    """Points LAM_CACHE at a fresh directory for the whole session."""
    path = tmp_path_factory.mktemp("lam-cache")
    previous = os.environ.get("LAM_CACHE")
    os.environ["LAM_CACHE"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("LAM_CACHE", None)
    else:
        os.environ["LAM_CACHE"] = previous


@pytest.fixture(scope="session")
def teacher_lam_dir(tmp_path_factory):
    """A LAM model directory converted from all-MiniLM-L6-v2 (teacher-initialised mixers)."""
    from lam.building import build_from_teacher

    return build_from_teacher(tmp_path_factory.mktemp("models") / "lam-from-teacher")


@pytest.fixture(scope="session")
def small_lam_dir(tmp_path_factory):
    """A complete model directory with the teacher's tokenizer and a small random LAM (d=32)."""
    import torch

    from lam import LAMConfig, LAMModel
    from lam.building import write_model_dir
    from lam.teacher import teacher_dir

    config = LAMConfig(hidden_size=32, num_hidden_layers=2, intermediate_size=64, num_heads=4, head_dim=8,
                       num_backward_heads=2, flux_hidden=4, chunk_size=8)
    torch.manual_seed(0)
    model = LAMModel(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" not in name:
                param.normal_(0.0, 0.3)
    tensors = {name: t.numpy() for name, t in model.state_dict().items()}
    return write_model_dir(tmp_path_factory.mktemp("models") / "small-lam", config, tensors, teacher_dir())


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch intra-op thread for a module of small tensors: more threads only add overhead, and
    on a loaded machine oversubscription makes the chunkwise form many times slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def make_tiny_model():
    """Returns make(seed=0, **config_overrides) -> a small LAMModel with unit-scale random weights."""
    import torch

    from lam import LAMConfig, LAMModel

    def make(seed=0, **overrides):
        fields = dict(vocab_size=120, hidden_size=32, num_hidden_layers=2, intermediate_size=64, num_heads=4,
                      head_dim=8, num_backward_heads=2, max_position_embeddings=16, flux_hidden=4, chunk_size=8)
        fields.update(overrides)
        torch.manual_seed(seed)
        model = LAMModel(LAMConfig(**fields))
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "norm" not in name:
                    param.normal_(0.0, 0.3)
        return model.eval()

    return make
