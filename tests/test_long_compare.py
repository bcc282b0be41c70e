"""`lam compare`'s long-document section on a tiny setting: every task runs, every system gets a
row, and the table and plot are written."""

from __future__ import annotations

import json

import pytest

from lam.benchmarking import long_compare
from lam.benchmarking.long_tasks import DEPTH_BANDS


@pytest.fixture(scope="module")
def tiny_report(teacher_lam_dir):
    settings = long_compare.LongSettings(models=(str(teacher_lam_dir), "no-such-model"), backends=("torch",),
                                         lengths=(256,), passkey_candidates=3, needle_candidates=3, books=0,
                                         articles=4, chunk_documents=2)
    messages = []
    return long_compare.run_long(settings, progress=messages.append), messages


def test_every_task_and_system_is_reported(tiny_report, teacher_lam_dir):
    report, messages = tiny_report
    lam_row = f"{teacher_lam_dir}/torch"
    assert set(report["load_errors"]) == {"no-such-model/torch"}
    known = report["known_item"]
    assert known["documents"] == 4 and known["books"] == 0 and known["queries"] > 0
    assert set(known["systems"]) == {lam_row, f"{lam_row} best chunk", "minilm-trunc256", "minilm-trunc512",
                                     "minilm-chunkmean256", "minilm-chunkmax256"}
    bands = {f"{lo}-{hi}" for lo, hi in DEPTH_BANDS}
    for row in known["systems"].values():
        assert 0 <= row["all"]["accuracy_at_1"] <= 100 and set(row["bands"]) <= bands
    for kind in ("passkey", "needle"):
        assert set(report["synthetic"][kind]["256"]) == set(known["systems"])
    chunks = report["chunks"]
    assert chunks["documents"] == 2 and chunks["queries"] > 0 and chunks["chunks"] >= chunks["documents"]
    assert set(chunks["systems"]) == {f"{lam_row} contextual", f"{lam_row} independent", "minilm independent"}
    assert messages[0].startswith("known-item retrieval: 4 held-out documents")
    json.dumps(report)


def test_table_and_plot(tiny_report, tmp_path):
    report, _ = tiny_report
    table = long_compare.format_long_table(report)
    assert "known-item retrieval" in table and "minilm-chunkmean256" in table and "contextual" in table
    assert "best chunk" in table and "minilm-chunkmax256" in table
    assert "could not load" in table
    long_compare.plot_long(report, tmp_path / "long.png")
    assert (tmp_path / "long.png").stat().st_size > 0


def test_teacher_chunk_mean_of_a_one_chunk_text_is_its_embedding():
    import numpy as np

    teacher = long_compare.TeacherSystems()
    texts = ["A short text fits in one chunk.", "Another one, about cats and dogs."]
    np.testing.assert_allclose(teacher.chunk_mean(texts), teacher.truncated(texts, long_compare.CHUNK_TOKENS),
                               atol=1e-5)


def test_a_document_of_chunks_scores_its_best_chunk():
    import numpy as np

    from lam.benchmarking.long_tasks import rank_of_relevant, similarity

    rng = np.random.default_rng(0)
    queries = rng.normal(size=(3, 8))
    chunked = [rng.normal(size=(n, 8)) * rng.uniform(0.5, 2.0) for n in (1, 4, 2)]
    unit = [c / np.linalg.norm(c, axis=1, keepdims=True) for c in chunked]
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    expected = np.array([[max(q[i] @ c.T) for c in unit] for i in range(3)])
    np.testing.assert_allclose(similarity(queries, chunked), expected, atol=1e-12)
    # One chunk per document is the one-vector case.
    single = np.stack([c[0] for c in chunked])
    np.testing.assert_allclose(similarity(queries, [c[:1] for c in chunked]), similarity(queries, single), atol=1e-12)
    planted = [np.vstack([c, queries[i] * 3.0]) for i, c in enumerate(chunked)]  # document i holds query i exactly
    assert rank_of_relevant(queries, planted, np.arange(3)).tolist() == [1, 1, 1]


def test_teacher_chunk_max_and_mean_come_from_the_same_chunks():
    import numpy as np

    teacher = long_compare.TeacherSystems()
    text = "A sentence about lighthouses and the keepers who lived in them. " * 60
    chunks = teacher.chunk_embeddings([text])[0]
    assert chunks.shape[0] > 2
    np.testing.assert_allclose(np.linalg.norm(chunks, axis=1), 1.0, atol=1e-5)
    mean = chunks.mean(0)
    np.testing.assert_allclose(teacher.chunk_mean([text])[0], mean / np.linalg.norm(mean), atol=1e-6)


def test_a_query_passage_is_found_across_whitespace_and_mapped_to_its_chunk():
    document = "First line here.\n\nThe  cat sat.\nOn the mat it slept. End."
    spans = [(0, 0, 16), (0, 16, len(document))]
    queries, relevant = long_compare._relevant_chunks([("The cat sat. On the mat it slept.", 0), ("absent text", 0)],
                                                      [document], spans)
    assert queries == ["The cat sat. On the mat it slept."] and relevant.tolist() == [1]


def test_leading_tokens_cuts_a_document_at_a_token_boundary():
    from lam.benchmarking.long_tasks import leading_tokens, plain_tokenizer
    from lam.teacher import teacher_dir

    tokenizer = plain_tokenizer(teacher_dir() / "tokenizer.json")
    text = "The ship's cartographer, unsurprisingly, redrew the coastline twice. " * 40

    def count(t):
        return len(tokenizer.encode(t, add_special_tokens=False).ids)

    cut = leading_tokens(tokenizer, text, 100)
    assert count(cut) == 100 and text.startswith(cut)
    assert leading_tokens(tokenizer, text, 10**6) == text
    assert leading_tokens(tokenizer, "short text", 100) == "short text"
