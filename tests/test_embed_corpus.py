"""`lam embed-corpus` locally: equal to `encode`, every row once, resumable after kill -9, clear errors."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from corpus_helpers import (assert_every_id_once_and_embeddings_match, corpus_texts, read_output, temporaries,
                            write_corpus)
from lam import LAM
from lam.corpus import CorpusInputError, embed_corpus
from lam.corpus.inputs import Columns, plan_shards, read_shard
from lam.corpus.shards import MANIFEST_NAME, exclusive

TEXTS = corpus_texts(2400)
JSONL_ROWS = 1100  # shard 2 (rows 1000-1499) spans both files


@pytest.fixture(scope="module")
def model(small_lam_dir):
    return LAM(small_lam_dir, backend="torch", fallback=False)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    return folder, write_corpus(folder, TEXTS, JSONL_ROWS)


def run(corpus_folder, output, model_dir, **options):
    options = {"text_column": "body", "id_column": "doc_id", "shard_size": 500, "workers": 1, "progress": False,
               **options}
    return embed_corpus(corpus_folder, output, model=str(model_dir), **options)


def test_local_run_equals_encode_with_every_id_once_then_a_rerun_does_nothing(corpus, model, small_lam_dir, tmp_path):
    folder, ids = corpus
    summary = run(folder, tmp_path / "out", small_lam_dir, workers=2)
    assert (summary["rows"], summary["shards"], summary["shards_written"]) == (2400, 5, 5)
    assert summary["rows_embedded"] == 2400 and summary["tokens_embedded"] == summary["tokens"] > 2400
    output = read_output(tmp_path / "out")
    assert_every_id_once_and_embeddings_match(output, ids, TEXTS, model, atol=1e-5)

    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(tmp_path / "out" / "part-000000.parquet")
    assert schema.field("embedding").type == pa.list_(pa.float32(), 32)
    assert schema.field("token_count").type == pa.int32() and schema.field("id").type == pa.string()
    manifest = json.loads((tmp_path / "out" / MANIFEST_NAME).read_text())
    assert manifest["complete"] and manifest["rows"] == 2400 and len(manifest["shards"]) == 5
    assert [s["first_row"] for s in manifest["shards"]] == [0, 500, 1000, 1500, 2000]
    assert sum(s["tokens"] for s in manifest["shards"]) == manifest["tokens"] == int(output["token_count"].sum())

    again = run(folder, tmp_path / "out", small_lam_dir)
    assert (again["shards_kept"], again["shards_written"], again["rows_embedded"]) == (5, 0, 0)


def _children(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(entry.name))
    return children


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find the worker processes")
def test_kill_9_mid_run_then_rerun_gives_every_id_once_and_no_partial_shard(model, small_lam_dir, tmp_path):
    texts = TEXTS[:600]
    folder, out = tmp_path / "corpus", tmp_path / "out"
    ids = write_corpus(folder, texts, jsonl_rows=300, row_group_size=64)
    command = [sys.executable, "-m", "lam.cli", "embed-corpus", str(folder), str(out), "--model", str(small_lam_dir),
               "--text-column", "body", "--id-column", "doc_id", "--shard-size", "25", "--workers", "1",
               "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not any(out.glob("part-*.parquet")):
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "no shard was written in time"
        time.sleep(0.01)
    workers = _children(process.pid)
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stderr.close()
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    finished = sorted(out.glob("part-*.parquet"))
    assert not manifest["complete"] and 1 <= len(finished) < 24, "the run was not interrupted mid-way"
    import pyarrow.parquet as pq

    for path in finished:  # every visible shard is whole
        assert pq.read_table(path).num_rows == 25
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in workers):  # workers notice their parent is gone and exit
        assert time.monotonic() < deadline, "pool workers outlived the killed run"
        time.sleep(0.2)

    finished[0].write_bytes(finished[0].read_bytes()[:-100])  # a damaged shard and a stale temporary
    (out / ".part-000023.parquet.123.tmp").write_bytes(b"half written")
    summary = run(folder, out, small_lam_dir, shard_size=25)
    assert summary["shards_kept"] == len(finished) - 1 and summary["shards_written"] == 24 - summary["shards_kept"]
    assert_every_id_once_and_embeddings_match(read_output(out), ids, texts, model, atol=1e-5)
    assert temporaries(out) == [] and json.loads((out / MANIFEST_NAME).read_text())["complete"]


def test_a_bad_row_stops_with_file_and_row_and_keeps_finished_shards(model, small_lam_dir, tmp_path):
    """A null text in b.parquet's row 30 stops the run in shard 2; shards 0-1 (a.jsonl) stay and
    are kept after the file is fixed."""
    texts = TEXTS[:400]
    ids = write_corpus(tmp_path / "corpus", texts, jsonl_rows=200)
    import pyarrow as pa
    import pyarrow.parquet as pq

    def write_b(bodies):
        pq.write_table(pa.table({"doc_id": ids[200:], "body": bodies}), tmp_path / "corpus" / "b.parquet",
                       row_group_size=64)

    write_b(texts[200:230] + [None] + texts[231:])
    with pytest.raises(CorpusInputError, match=r"b\.parquet: row 30: 'body' is null, not a string"):
        run(tmp_path / "corpus", tmp_path / "out", small_lam_dir, shard_size=100)
    assert sorted(p.name for p in (tmp_path / "out").glob("part-*")) == ["part-000000.parquet", "part-000001.parquet"]
    assert temporaries(tmp_path / "out") == []
    assert_every_id_once_and_embeddings_match(read_output(tmp_path / "out"), ids[:200], texts[:200], model, atol=1e-5)

    write_b(texts[200:])
    summary = run(tmp_path / "corpus", tmp_path / "out", small_lam_dir, shard_size=100)
    assert (summary["shards_kept"], summary["shards_written"]) == (2, 2)
    assert_every_id_once_and_embeddings_match(read_output(tmp_path / "out"), ids, texts, model, atol=1e-5)


@pytest.mark.parametrize("content, message", [
    ('{"body": "fine"}\n{"text": "no body"}\n', r"docs\.jsonl: line 2: no 'body' field \(fields: text\)"),
    ('{"body": "fine"}\n\n{"body": 17}\n', r"docs\.jsonl: line 3: 'body' is of type int, not a string"),
    ('{"body": "fine"}\n{"body": "cut\n', r"docs\.jsonl: line 2: not a JSON object"),
    ('["body"]\n', r"docs\.jsonl: line 1: not a JSON object but a list"),
    (b'{"body": "bad \xff byte"}\n', r"docs\.jsonl: line 1: not a JSON object"),
])
def test_bad_jsonl_rows_are_named_by_file_and_line(tmp_path, content, message):
    path = tmp_path / "docs.jsonl"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    _, shards = plan_shards(path, 10)
    with pytest.raises(CorpusInputError, match=message):
        read_shard(shards[0], Columns("body"))


def test_bad_parquet_inputs_are_named_by_file_and_row(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"body": ["a", "b", "c"], "n": [1, 2, 3]}), tmp_path / "x.parquet", row_group_size=2)
    _, shards = plan_shards(tmp_path / "x.parquet", 2)
    with pytest.raises(CorpusInputError, match=r"x\.parquet: row 0: no 'text' column \(columns: body, n\)"):
        read_shard(shards[0], Columns("text"))
    with pytest.raises(CorpusInputError, match=r"x\.parquet: row 2: 'n' is of type int, not a string"):
        read_shard(shards[1], Columns("n"))
    pq.write_table(pa.table({"body": ["a"], "key": [1.5]}), tmp_path / "y.parquet")
    with pytest.raises(CorpusInputError, match=r"y\.parquet: row 0: id 'key' is of type float, not a string or"):
        read_shard(plan_shards(tmp_path / "y.parquet", 2)[1][0], Columns("body", "key"))
    assert read_shard(shards[1], Columns("body", "n")) == (["3"], ["c"])


def test_unreadable_and_unsupported_inputs_fail_before_any_work(tmp_path, small_lam_dir):
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(CorpusInputError, match=r"broken\.parquet: not a readable Parquet file"):
        run(tmp_path / "broken.parquet", tmp_path / "out", small_lam_dir)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CorpusInputError, match=r"notes\.txt: not a \.jsonl or \.parquet file"):
        plan_shards(tmp_path / "notes.txt", 10)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusInputError, match="no .jsonl or .parquet files"):
        plan_shards(tmp_path / "empty", 10)
    with pytest.raises(CorpusInputError, match="no such file or folder"):
        plan_shards(tmp_path / "nowhere", 10)
    assert not list((tmp_path / "out").glob("part-*"))


def test_shards_follow_rows_across_files_and_skip_blank_lines(corpus):
    folder, ids = corpus
    files, shards = plan_shards(folder, 500)
    assert [(f.name, f.rows) for f in files] == [("a.jsonl", JSONL_ROWS), ("b.parquet", 2400 - JSONL_ROWS)]
    assert [(s.first_row, s.rows) for s in shards] == [(0, 500), (500, 500), (1000, 500), (1500, 500), (2000, 400)]
    assert [(seg.name, seg.first, seg.rows) for seg in shards[2].segments] == [("a.jsonl", 1000, 100),
                                                                               ("b.parquet", 0, 400)]
    read_ids, texts = [], []
    for shard in shards:
        shard_ids, shard_texts = read_shard(shard, Columns("body", "doc_id"))
        read_ids += shard_ids
        texts += shard_texts
    assert read_ids == ids and texts == TEXTS


def test_other_settings_or_a_concurrent_run_are_refused(corpus, small_lam_dir, tmp_path):
    folder, _ = corpus
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / MANIFEST_NAME).write_text(json.dumps({"settings": {"shard_size": 7}}))
    with pytest.raises(ValueError, match="other settings.*shard_size"):
        run(folder, tmp_path / "out", small_lam_dir)
    with exclusive(tmp_path / "out"):
        with pytest.raises(RuntimeError, match="another embed-corpus run"):
            run(folder, tmp_path / "out", small_lam_dir)


def test_cli_reports_bad_input_without_a_traceback(tmp_path, capsys):
    from lam.cli import main

    (tmp_path / "broken.parquet").write_bytes(b"garbage")
    with pytest.raises(SystemExit, match=r"lam embed-corpus: .*broken\.parquet: not a readable Parquet file"):
        main(["embed-corpus", str(tmp_path / "broken.parquet"), str(tmp_path / "out")])
    with pytest.raises(SystemExit, match="--shard-size must be >= 1"):
        main(["embed-corpus", str(tmp_path), str(tmp_path / "out"), "--shard-size", "0"])


def test_importing_lam_and_its_corpus_and_ray_modules_loads_neither_ray_nor_pyarrow():
    code = ("import sys, lam, lam.cli, lam.corpus, lam.multiprocess, lam.ray; "
            "print(sorted({'ray', 'pyarrow'} & set(sys.modules)))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"
