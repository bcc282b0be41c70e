"""The JAX backend against the torch backend, its shape buckets and compilation cache, and
`LAM`'s fallback between the two.

SPEC §3: full-model embeddings of the two backends agree to <= 1e-5 max abs (cosine >= 0.99999).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

from required import require_jax

jax = require_jax()

import lam  # noqa: E402
from lam import _jax_backend  # noqa: E402
from lam._jax_backend import JaxBackend, bucket_batch, bucket_length, enable_compilation_cache  # noqa: E402
from lam._torch_backend import TorchBackend  # noqa: E402

TOLERANCE = 1e-5
SENTENCES = [
    "A man is playing a guitar.", "A woman is slicing an onion.", "Two dogs run across a snowy field.",
    "The stock market fell sharply on Tuesday.", "A child rides a red bicycle down the street.",
    "Scientists discovered a new species of frog in the rainforest.", "The cat sleeps.",
    "He ordered a large pizza with extra cheese and mushrooms.", "Rain is expected tomorrow afternoon.",
    "A group of people are dancing at a wedding.", "The airplane landed safely despite the storm.",
    "She is reading a book about ancient Rome.", "Hello!", "The committee approved the new budget.",
    "A boy is kicking a soccer ball into a goal.", "Lightning struck the old oak tree last night.",
    "Two women are drinking coffee in a small cafe near the river.", "The train was delayed by an hour.",
    "A chef is preparing sushi.", "Volunteers cleaned the beach on Saturday morning.",
    "The museum opens at nine.", "A dog is catching a frisbee in the park.", "Prices of oil rose again.",
    "An old man is feeding pigeons.", "The team celebrated their championship victory with a parade.",
    "Students are taking an exam in a quiet hall.", "",
    "A very long sentence that keeps going, " * 6 + "and finally ends.",
]


def tensors_of(model):
    return {name: t.detach().numpy().copy() for name, t in model.state_dict().items()}


def padded_batch(lengths, vocab_size, seed=0):
    rng = np.random.default_rng(seed)
    mask = (np.arange(max(lengths))[None, :] < np.array(lengths)[:, None]).astype(np.int64)
    return np.where(mask, rng.integers(1, vocab_size, mask.shape), 0), mask


def assert_embeddings_agree(actual, expected):
    assert actual.shape == expected.shape and actual.dtype == np.float32
    assert np.abs(actual - expected).max() <= TOLERANCE
    assert (actual * expected).sum(-1).min() >= 0.99999


@pytest.mark.parametrize(("policy", "lengths"), [
    ("clamp", (600, 37, 1)),  # past max_position_embeddings = 512: the last position is reused
    ("none", (600, 37, 1)),
    ("clamp", (1,)),  # a single one-token text
    ("clamp", (23,)),
])
def test_backends_agree(make_tiny_model, lam_cache, policy, lengths):
    model = make_tiny_model(position_policy=policy, max_position_embeddings=512)
    tensors = tensors_of(model)
    ids, mask = padded_batch(lengths, model.config.vocab_size)
    torch_hidden, torch_sentences = TorchBackend(model.config, tensors, "cpu").forward(ids, mask)
    jax_hidden, jax_sentences = JaxBackend(model.config, tensors, "cpu").forward(ids, mask)
    assert_embeddings_agree(jax_sentences, torch_sentences)
    assert jax_hidden.shape == torch_hidden.shape
    assert np.abs(jax_hidden - torch_hidden)[mask == 1].max() <= 1e-4


def test_converted_teacher_model_agrees(teacher_lam_dir, lam_cache):
    by_torch = lam.LAM(teacher_lam_dir, backend="torch").encode(SENTENCES)
    jax_model = lam.LAM(teacher_lam_dir, backend="jax")
    assert jax_model.backend == "jax"
    assert_embeddings_agree(jax_model.encode(SENTENCES, batch_size=16), by_torch)


def test_bucket_rules():
    assert [bucket_batch(n) for n in (1, 2, 3, 5, 32, 33)] == [1, 2, 4, 8, 32, 64]
    assert [bucket_length(n) for n in (1, 2, 3, 31, 32, 33, 63, 64, 65, 129, 200, 513, 32768)] == [
        2, 2, 4, 32, 32, 36, 64, 64, 72, 144, 208, 576, 32768]
    lengths = range(1, 5000)
    assert all(n <= bucket_length(n) <= max(n + 1, 1.125 * n) for n in lengths)
    assert all(bucket_length(bucket_length(n)) == bucket_length(n) for n in lengths)
    assert len({bucket_length(n) for n in range(1, 32769)}) == 96


def test_compilations_stay_within_buckets(make_tiny_model, lam_cache):
    model = make_tiny_model(chunk_size=8)
    backend = JaxBackend(model.config, tensors_of(model), "cpu")
    shapes = [(1, 3), (1, 4), (2, 3), (2, 4), (3, 5), (4, 6), (3, 6), (4, 5), (5, 7), (7, 8), (8, 8), (6, 33)]
    buckets = {(bucket_batch(b), bucket_length(n)) for b, n in shapes}
    assert len(buckets) == 5
    for size, length in shapes * 2:
        ids, mask = padded_batch([length] * size, model.config.vocab_size)
        hidden, sentences = backend.forward(ids, mask)
        assert hidden.shape == (size, length, model.config.hidden_size) and sentences.shape == (size, model.config.hidden_size)
    assert backend.compiled_shapes == buckets


def test_compilation_cache_dir(monkeypatch, tmp_path):
    previous = jax.config.jax_compilation_cache_dir, jax.config.jax_compilation_cache_max_size
    try:
        jax.config.update("jax_compilation_cache_dir", None)
        jax.config.update("jax_compilation_cache_max_size", -1)
        monkeypatch.setenv("LAM_CACHE", str(tmp_path / "lam"))
        assert enable_compilation_cache() == tmp_path / "lam" / "jax-cache"
        assert jax.config.jax_compilation_cache_dir == os.fspath(tmp_path / "lam" / "jax-cache")
        # Bounded, hence locked by JAX around reads and writes.
        assert jax.config.jax_compilation_cache_max_size == _jax_backend.COMPILATION_CACHE_BYTES
        for directory in (tmp_path / "lam", tmp_path / "lam" / "jax-cache"):
            assert stat.S_IMODE(directory.stat().st_mode) & 0o077 == 0
        jax.config.update("jax_compilation_cache_dir", str(tmp_path / "chosen"))
        assert enable_compilation_cache() is None
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "chosen")
    finally:
        jax.config.update("jax_compilation_cache_dir", previous[0])
        jax.config.update("jax_compilation_cache_max_size", previous[1])


CACHE_USER = """
import json, os, sys, time, warnings
import numpy as np
import jax
from lam import LAM

counts = {}
jax.monitoring.register_event_listener(lambda event, **kw: counts.__setitem__(event, counts.get(event, 0) + 1))
model_dir, out, barrier, parties = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
model = LAM(model_dir, backend="jax", fallback=False)
open(os.path.join(barrier, os.path.basename(out)), "w").close()
deadline = time.monotonic() + 300
while len(os.listdir(barrier)) < parties:  # start compiling together
    if time.monotonic() > deadline:
        sys.exit("the other processes never reached the barrier")
    time.sleep(0.005)
texts = [" ".join(["word"] * n) for n in (1, 5, 9, 17, 33, 65, 120)]
rows = [model.encode(texts[:size], batch_size=size) for size in (1, 2, 3, 5, 7)]
np.save(out, np.concatenate(rows))
print(json.dumps({key.rsplit("/", 1)[-1]: n for key, n in counts.items() if "compilation_cache" in key}))
"""


def run_cache_users(model_dir, tmp_path, name, parties):
    """Start `parties` processes sharing one LAM cache at once; their (embeddings, cache counts)."""
    barrier = tmp_path / f"barrier-{name}"
    barrier.mkdir()
    env = {**os.environ, "LAM_CACHE": str(tmp_path / "cache"), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
           "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    outputs = [tmp_path / f"{name}-{i}.npy" for i in range(parties)]
    runs = [subprocess.Popen([sys.executable, "-c", CACHE_USER, str(model_dir), str(out), str(barrier), str(parties)],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for out in outputs]
    finished = [run.communicate(timeout=600) for run in runs]
    results = []
    for run, (stdout, stderr), out in zip(runs, finished, outputs):
        assert run.returncode == 0, stderr
        assert "compilation cache" not in stderr, stderr  # JAX warns on unreadable or unwritable entries
        results.append((np.load(out), json.loads(stdout.strip().splitlines()[-1])))
    return results


def test_two_processes_build_and_share_the_compilation_cache(small_lam_dir, tmp_path):
    together = run_cache_users(small_lam_dir, tmp_path, "together", 2)
    entries = list((tmp_path / "cache" / "jax-cache").glob("*-cache"))
    assert len(entries) >= 5  # one per (batch, length) bucket at least
    later, = run_cache_users(small_lam_dir, tmp_path, "later", 1)
    assert later[1].get("cache_hits", 0) >= 5 and later[1].get("cache_misses", 0) == 0
    for embeddings, _ in together:
        np.testing.assert_array_equal(embeddings, later[0])


def test_unimportable_jax_falls_back_to_torch(small_lam_dir, lam_cache, monkeypatch):
    expected = lam.LAM(small_lam_dir, backend="torch").encode(SENTENCES[:5])
    monkeypatch.setitem(sys.modules, "jax", None)
    for name in ("lam._jax_backend", "lam._jax_model", "lam._jax_core"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    with pytest.warns(lam.BackendFallbackWarning, match="jax"):
        model = lam.LAM(small_lam_dir, backend="jax")
    assert model.backend == "torch"
    np.testing.assert_allclose(model.encode(SENTENCES[:5]), expected, atol=1e-7)
    with pytest.raises(ImportError):
        lam.LAM(small_lam_dir, backend="jax", fallback=False)


@pytest.mark.parametrize("failing", ("jax", "torch"))
def test_failing_forward_falls_back_to_the_other_backend(small_lam_dir, lam_cache, monkeypatch, failing):
    other = "torch" if failing == "jax" else "jax"
    expected = lam.LAM(small_lam_dir, backend=other).encode(SENTENCES[:5])
    model = lam.LAM(small_lam_dir, backend=failing)
    strict = lam.LAM(small_lam_dir, backend=failing, fallback=False)
    failing_class = JaxBackend if failing == "jax" else TorchBackend

    def broken_forward(self, input_ids, attention_mask):
        raise RuntimeError("device lost")

    monkeypatch.setattr(failing_class, "forward", broken_forward)
    with pytest.warns(lam.BackendFallbackWarning, match="device lost"):
        embeddings = model.encode(SENTENCES[:5])
    assert model.backend == other
    np.testing.assert_allclose(embeddings, expected, atol=1e-7)
    with pytest.raises(RuntimeError, match="device lost"):
        strict.encode(SENTENCES[:5])


def test_device_names(make_tiny_model, lam_cache):
    model = make_tiny_model()
    backend = JaxBackend(model.config, tensors_of(model), "cpu:0")
    assert backend.device.platform == "cpu" and backend.device_type == "cpu" and backend.form == "scan"
    assert _jax_backend.resolve_device(None) == jax.devices()[0]
    with pytest.raises(RuntimeError):
        _jax_backend.resolve_device("tpu")
