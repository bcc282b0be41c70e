"""Stage 3 on cached features: the cache reproduces the model, the loss falls, and an
interrupted run resumes to exactly the uninterrupted result."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lam.benchmarking.long_tasks import Query
from lam.teacher import teacher_dir
from lam.training.long_head import (FeatureCache, TokenFeatures, cache_features, cached_known_item, features_of,
                                    head_loss, pooled)
from lam.training.loop import LoopSettings, run_loop
from lam.training.student import build_student
from lam.training.teacher import TextTokens, pad_token_ids

TOPICS = ("cats and their kittens", "old steam trains", "the moons of Jupiter", "baking sourdough bread",
          "medieval castles", "coral reefs and fish")
DOCUMENTS = [" ".join(f"Part {i} of a long story about {topic}, with detail number {i * 7 % 11}." for i in range(60))
             for topic in TOPICS]


@pytest.fixture(scope="module")
def tokens() -> TextTokens:
    return TextTokens(teacher_dir() / "tokenizer.json")


def tiny_student():
    torch.manual_seed(0)
    model, _ = build_student(num_hidden_layers=2)
    return model.eval()


@pytest.fixture(scope="module")
def feature_dir(tokens, tmp_path_factory):
    out = tmp_path_factory.mktemp("features")
    queries = [Query(f"A story about {topic}, detail {d}.", index, depth)
               for index, topic in enumerate(TOPICS) for d, depth in ((3, 10), (5, 2000))]
    short = ["a red car", "the dog sleeps", "rain in the hills", "a bowl of soup"]
    targets = np.eye(4, 384, dtype=np.float32)
    cache_features(tiny_student(), tokens, DOCUMENTS, queries, short, targets, out, max_document_tokens=512)
    return out


def test_cached_features_reproduce_the_model_embedding(tokens):
    model = tiny_student()
    ids = tokens(["short", DOCUMENTS[0], "a medium sentence about several things"], 700)
    features = features_of(model, ids, batch_tokens=800)  # several length-sorted batches
    with torch.no_grad():
        direct = model.embed(*pad_token_ids(ids)).numpy()
        from_cache = torch.stack([pooled(model.layers[-1], features[i]) for i in range(len(ids))]).numpy()
    assert [len(features[i]) for i in range(len(ids))] == [len(x) for x in ids]
    np.testing.assert_allclose(from_cache, direct, atol=2e-4)  # the cache is float16


def test_feature_directory_round_trip(feature_dir):
    cache = FeatureCache.load(feature_dir)
    assert len(cache.documents) == len(DOCUMENTS) and len(cache.queries) == 2 * len(TOPICS)
    assert cache.query_documents.tolist() == [i for i in range(len(TOPICS)) for _ in range(2)]
    assert cache.query_depths.tolist()[:2] == [10, 2000] and cache.short_targets.shape == (4, 384)
    assert cache.documents.values.dtype == np.float16 and cache.documents[0].shape[1] == 384
    again = TokenFeatures(np.asarray(cache.short.values), cache.short.offsets)
    again.save(feature_dir / "copy")
    np.testing.assert_array_equal(TokenFeatures.load(feature_dir / "copy")[2], cache.short[2])


def _stage3(feature_dir, out, stop_at=None, resume=False, steps=5):
    torch.manual_seed(0)
    model = tiny_student()
    layer = model.layers[-1]
    params = [p for m in (layer.ffn_in, layer.ffn_out, layer.ffn_norm) for p in m.parameters()]
    step_loss = head_loss(layer, FeatureCache.load(feature_dir), seed=1, documents_per_batch=4, short_batch_size=2,
                          sample_tokens=64, window_fraction=0.5, temperature=0.05, distill_weight=1.0,
                          similarity_weight=1.0)
    records = run_loop(model, params, step_loss, LoopSettings(steps=steps, lr=3e-3, warmup=1), out, resume=resume,
                       stop_at=stop_at)
    return model, records, step_loss


def test_stage3_lowers_its_loss_and_only_moves_the_last_feed_forward(feature_dir, tmp_path):
    before = {k: v.clone() for k, v in tiny_student().state_dict().items()}
    model, _, step_loss = _stage3(feature_dir, tmp_path / "run", steps=1)
    first = step_loss(0)[0].item()
    model, _, step_loss = _stage3(feature_dir, tmp_path / "longer", steps=12)
    assert step_loss(0)[0].item() < 0.9 * first
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith("layers.1.ffn_") for k in changed)
    scores = cached_known_item(model.layers[-1], FeatureCache.load(feature_dir), ((0, 1024), (1024, 4096)))
    assert set(scores) == {"0-1024", "1024-4096", "all"} and 0 <= scores["all"] <= 100


def test_stage3_resumes_exactly(feature_dir, tmp_path):
    straight, straight_records, _ = _stage3(feature_dir, tmp_path / "straight")
    _stage3(feature_dir, tmp_path / "resumed", stop_at=2)
    resumed, resumed_records, _ = _stage3(feature_dir, tmp_path / "resumed", resume=True)
    assert resumed_records[0]["step"] == 2 and resumed_records[-1]["loss"] == straight_records[-1]["loss"]
    for name, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name
