"""Ray Data: `lam.ray.embed_dataset` and `embed-corpus --ray` on a local 2-CPU cluster, with an actor killed mid-run."""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import pytest
import ray

from corpus_helpers import assert_every_id_once_and_embeddings_match, corpus_texts, read_output, write_corpus
from lam import LAM
from lam.corpus import embed_corpus
from lam.ray import LAMEmbedder, actor_pool_arguments, embed_dataset

TEXTS = corpus_texts(2000)
MARKER_ENV = "LAM_TEST_ACTOR_DIED_MARKER"
CALLS_ENV = "LAM_TEST_ACTOR_CALLS"
DOOMED_ROW = 1234


class DiesOnceEmbedder(LAMEmbedder):
    """Kills its own actor process (as the OOM killer or a lost node would) on the batch holding
    DOOMED_ROW, the first time only: the marker file records that it happened."""

    def __call__(self, batch):
        marker = os.environ[MARKER_ENV]
        if DOOMED_ROW in batch["row"] and not os.path.exists(marker):
            with open(marker, "w") as handle:
                handle.write(str(os.getpid()))
            os._exit(1)
        return super().__call__(batch)


class RecordsCallsEmbedder(LAMEmbedder):
    """Writes a file per call named by its process, and takes a second per call, so that one
    actor alone could not finish the run before the other is up."""

    def __call__(self, batch):
        folder = os.environ[CALLS_ENV]
        with open(os.path.join(folder, f"{os.getpid()}-{int(batch['row'][0])}"), "w"):
            pass
        time.sleep(1.0)
        return super().__call__(batch)


@pytest.fixture(scope="module")
def ray_session(tmp_path_factory, lam_cache):
    """One local Ray cluster (2 CPUs) for the module; actors see the marker path and this module."""
    marker = tmp_path_factory.mktemp("ray-marker") / "actor-died"
    calls = tmp_path_factory.mktemp("ray-calls")
    here = os.path.dirname(os.path.abspath(__file__))
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING",
             runtime_env={"env_vars": {MARKER_ENV: str(marker), CALLS_ENV: str(calls), "LAM_CACHE": str(lam_cache),
                                       "HF_HUB_OFFLINE": "1",
                                       "PYTHONPATH": os.pathsep.join([here, os.environ.get("PYTHONPATH", "")])}})
    yield marker, calls
    ray.shutdown()


@pytest.fixture(scope="module")
def model(small_lam_dir):
    return LAM(small_lam_dir, backend="torch", fallback=False)


def test_embed_dataset_adds_embedding_and_token_count_columns(ray_session, model, small_lam_dir):
    texts = TEXTS[:300]
    ds = ray.data.from_items([{"text": text, "key": i} for i, text in enumerate(texts)])
    rows = sorted(embed_dataset(ds, model=str(small_lam_dir), num_actors=2, batch_size=64).take_all(),
                  key=lambda row: row["key"])
    assert [row["key"] for row in rows] == list(range(300))
    np.testing.assert_allclose(np.stack([row["embedding"] for row in rows]), model.encode(texts), rtol=0, atol=1e-5)
    assert [row["token_count"] for row in rows] == [len(ids) for ids in model._tokenize(texts)]


def test_corpus_on_ray_survives_a_killed_actor_with_every_row_once(ray_session, model, small_lam_dir, tmp_path):
    marker, _ = ray_session
    ids = write_corpus(tmp_path / "corpus", TEXTS, jsonl_rows=900)
    summary = embed_corpus(tmp_path / "corpus", tmp_path / "out", model=str(small_lam_dir), text_column="body",
                           id_column="doc_id", shard_size=400, workers=2, batch_size=16, ray_address="local",
                           progress=False, embedder_class=DiesOnceEmbedder)
    assert marker.exists(), "the actor was not killed: the test did not test a restart"
    assert summary["engine"].startswith("ray, 2 actors")
    assert (summary["rows"], summary["shards_written"]) == (2000, 5)
    assert_every_id_once_and_embeddings_match(read_output(tmp_path / "out"), ids, TEXTS, model, atol=1e-5)


def test_corpus_on_ray_spreads_the_work_over_every_actor(ray_session, small_lam_dir, tmp_path):
    _, calls = ray_session
    write_corpus(tmp_path / "corpus", TEXTS[:800], jsonl_rows=800)
    summary = embed_corpus(tmp_path / "corpus", tmp_path / "out", model=str(small_lam_dir), text_column="body",
                           id_column="doc_id", shard_size=400, workers=2, ray_address="local", progress=False,
                           embedder_class=RecordsCallsEmbedder)
    assert summary["rows"] == 800
    processes = {name.split("-")[0] for name in os.listdir(calls)}
    assert len(os.listdir(calls)) == 8  # 2 shards of 400 rows, read as 4 pieces per actor
    assert len(processes) == 2, f"only {len(processes)} of 2 actors embedded anything"


def test_actor_pool_arguments_follow_the_ray_version():
    """Ray 2.9-2.50 take concurrency=n; from 2.51, compute=ActorPoolStrategy(size=n). The two tests
    above run whichever the installed Ray takes (they passed with Ray 2.44.1 and 2.60.0)."""
    from ray.data import ActorPoolStrategy

    assert actor_pool_arguments(3, "2.9.0") == actor_pool_arguments(3, "2.50.1") == {"concurrency": 3}
    for version in ("2.51.0", "2.60.0", "3.0.0"):
        pool = actor_pool_arguments(3, version)["compute"]
        assert isinstance(pool, ActorPoolStrategy) and (pool.min_size, pool.max_size) == (3, 3)


def test_without_ray_the_error_says_what_to_install(monkeypatch):
    from lam.ray import require_ray

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"pip install 'lam-embeddings\[ray\]'"):
        require_ray()
