"""Shared fixtures for the mmdit_jax tests: tiny configurations so the suite stays fast on CPU."""

import email.parser
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmdit_jax import InContextMMDiT, MMDiT, full_attention_mask

TINY = dict(dim_head=4, heads=2, ff_mult=2)
DIM_MODALITIES = (8, 6)
DIM_OUTS = (3, 4)
SEQ_LENS = (5, 4)
DIM_COND = 16
TIMESTEP_EMBED_DIM = 8
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the mmdit_jax source directory


def _random_tokens(seq_lens, dims, seed=0):
    rng = np.random.default_rng(seed)
    return tuple(jnp.asarray(rng.standard_normal((n, d)), dtype=jnp.float32) for n, d in zip(seq_lens, dims))


def _perturb(model, seed, scale):
    # Noise is drawn with numpy: jax.random would compile a sampler per parameter shape.
    rng = np.random.default_rng(seed)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    params = jax.tree_util.tree_map(
        lambda p: jnp.asarray(np.asarray(p) + scale * rng.standard_normal(p.shape), dtype=p.dtype), params
    )
    return eqx.combine(params, static)


@pytest.fixture(scope="session")
def sizes():
    """Widths and lengths of the two-modality fixtures."""
    return SimpleNamespace(
        dim_modalities=DIM_MODALITIES,
        dim_outs=DIM_OUTS,
        seq_lens=SEQ_LENS,
        dim_cond=DIM_COND,
        timestep_embed_dim=TIMESTEP_EMBED_DIM,
    )


@pytest.fixture(scope="session")
def tiny():
    """Small attention / feed-forward sizes for every model in the tests."""
    return dict(TINY)


@pytest.fixture(scope="session")
def make_tokens():
    """make_tokens(seq_lens, dims, seed) -> tuple of random (seq_len_i, dim_i) arrays."""
    return _random_tokens


@pytest.fixture(scope="session")
def perturb():
    """perturb(model, seed, scale) adds Gaussian noise to every parameter.

    Fresh models are adaLN-Zero identities that ignore the conditioning and other
    modalities, which would make mask and conditioning tests pass vacuously.
    """
    return lambda model, seed=0, scale=0.3: _perturb(model, seed, scale)


@pytest.fixture(scope="session")
def mmdit(perturb):
    """A perturbed two-modality MMDiT with DIM_MODALITIES -> DIM_OUTS."""
    config = (DIM_MODALITIES, DIM_OUTS, DIM_COND, TIMESTEP_EMBED_DIM)
    model = MMDiT(2, *config, **TINY, key=jax.random.PRNGKey(0))
    return perturb(model)


@pytest.fixture(scope="session")
def in_context(perturb):
    """A perturbed two-modality InContextMMDiT with DIM_MODALITIES -> DIM_OUTS."""
    model = InContextMMDiT(2, DIM_MODALITIES, DIM_OUTS, **TINY, key=jax.random.PRNGKey(1))
    return perturb(model)


@pytest.fixture(scope="session")
def tokens():
    """One example's tokens for the two-modality fixtures."""
    return _random_tokens(SEQ_LENS, DIM_MODALITIES)


@pytest.fixture(scope="session")
def mmdit_forward():
    """Jitted `model(tokens, timestep, mask)`, shared so compilations are reused across tests."""
    return eqx.filter_jit(lambda model, tokens, timestep, mask=None: model(tokens, timestep, mask))


@pytest.fixture(scope="session")
def blocking_mask():
    """(9, 9) mask over SEQ_LENS in which modality 0 does not attend to modality 1."""
    return full_attention_mask(SEQ_LENS).at[: SEQ_LENS[0], SEQ_LENS[0]:].set(False)


@pytest.fixture(scope="session")
def loss_outputs_and_grads():
    """jit(value_and_grad)(mmdit_model, tokens, mask) -> ((loss, outputs), grads), timestep 0.4.

    One function for every gradient test, so models of one structure compile once.
    """

    def loss(model, tokens, mask):
        outputs = model(tokens, 0.4, mask)
        return sum(jnp.mean(jnp.square(out - 1.0)) for out in outputs), outputs

    return jax.jit(jax.value_and_grad(loss, has_aux=True))


@pytest.fixture(scope="session")
def in_context_forward():
    """Jitted `model(tokens, mask)`."""
    return eqx.filter_jit(lambda model, tokens, mask=None: model(tokens, mask))


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory):
    """The mmdit-jax wheel, built from a copy of the package directory (the build writes into its source)."""
    work = tmp_path_factory.mktemp("mmdit-wheel")
    source = work / "mmdit_jax"
    shutil.copytree(
        PACKAGE_DIR, source, ignore=shutil.ignore_patterns("tests", "build", "*.egg-info", "__pycache__")
    )
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"]
    subprocess.run([*command, "--wheel-dir", str(work / "dist"), str(source)], check=True)
    (wheel,) = (work / "dist").glob("mmdit_jax-*.whl")
    return wheel


@pytest.fixture(scope="session")
def wheel_metadata(built_wheel):
    """The wheel's METADATA as an email.message.Message (Requires-Dist, Provides-Extra, ...)."""
    with zipfile.ZipFile(built_wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.parser.Parser().parsestr(archive.read(name).decode())
