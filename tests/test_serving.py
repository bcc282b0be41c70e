"""`lam serve` as a real subprocess on 127.0.0.1: OpenAI client, plain HTTP, TEI, metrics, bad input, load."""

from __future__ import annotations

import base64
import re
import shlex
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from lam import LAM
from lam.benchmarking.workloads import synthetic_document
from lam.serving.process import ServerProcess, lam_serve_command, send
from serving_helpers import STOPPED_BY_SIGTERM, metrics

MAX_INPUT_TOKENS = 48
MAX_CLIENT_BATCH = 8
NAME = "lam-small"
TEXTS = ["A man is playing a guitar.", "Someone plays music.", "", "emoji 🙂 and CJK 漢字",
         "The weather is lovely today, with clear skies and a light breeze."]
README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def server(small_lam_dir, tmp_path_factory):
    process = ServerProcess(lam_serve_command(str(small_lam_dir), "--max-input-tokens", str(MAX_INPUT_TOKENS),
                                              "--max-client-batch-size", str(MAX_CLIENT_BATCH),
                                              "--served-model-name", NAME, "--log-level", "warning"),
                            tmp_path_factory.mktemp("serve") / "server.log")
    yield process
    assert process.stop() in STOPPED_BY_SIGTERM, process.log()


@pytest.fixture(scope="module")
def reference(small_lam_dir):
    model = LAM(small_lam_dir, backend="torch", fallback=False)
    model.max_seq_length = MAX_INPUT_TOKENS
    return model


def token_count(model: LAM, text: str) -> int:
    return len(model.tokenizer(text, truncation=True, max_length=model.max_seq_length)["input_ids"])


def decode_base64(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f4")


# -- OpenAI route --------------------------------------------------------------------------
def test_openai_client_gets_the_embeddings_of_lam_encode(server, reference):
    from openai import OpenAI

    client = OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0)
    batch = client.embeddings.create(model=NAME, input=TEXTS)  # the client asks for base64 by default
    assert [d.index for d in batch.data] == list(range(len(TEXTS))) and batch.model == NAME
    np.testing.assert_allclose(np.array([d.embedding for d in batch.data]), reference.encode(TEXTS), atol=1e-5)
    assert batch.usage.prompt_tokens == batch.usage.total_tokens == sum(token_count(reference, t) for t in TEXTS)

    single = client.embeddings.create(model=NAME, input=TEXTS[0], encoding_format="float")
    np.testing.assert_allclose(single.data[0].embedding, reference.encode(TEXTS[0]), atol=1e-5)

    short = client.embeddings.create(model=NAME, input=TEXTS[:2], dimensions=8)
    expected = reference.encode(TEXTS[:2], truncate_dim=8, normalize_embeddings=True)
    np.testing.assert_allclose(np.array([d.embedding for d in short.data]), expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(expected, axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize("path", ["/v1/embeddings", "/embeddings"])
def test_plain_http_float_and_base64_agree_with_encode(server, reference, path):
    expected = reference.encode(TEXTS)
    status, headers, floats = server.post(path, {"input": TEXTS, "model": "anything", "encoding_format": "float"})
    assert status == 200 and headers["content-type"] == "application/json"
    assert floats["object"] == "list" and floats["model"] == NAME
    assert [(d["object"], d["index"]) for d in floats["data"]] == [("embedding", i) for i in range(len(TEXTS))]
    np.testing.assert_allclose(np.array([d["embedding"] for d in floats["data"]]), expected, atol=1e-5)

    status, _, packed = server.post(path, {"input": TEXTS, "encoding_format": "base64", "dimensions": 5})
    assert status == 200
    rows = np.stack([decode_base64(d["embedding"]) for d in packed["data"]])
    np.testing.assert_allclose(rows, reference.encode(TEXTS, truncate_dim=5, normalize_embeddings=True), atol=1e-5)
    assert packed["usage"] == floats["usage"]

    status, _, one = server.post(path, {"input": "a cat"})
    assert status == 200 and len(one["data"]) == 1
    np.testing.assert_allclose(one["data"][0]["embedding"], reference.encode("a cat"), atol=1e-5)


# -- TEI routes ----------------------------------------------------------------------------
def test_tei_embed_info_and_health(server, reference, small_lam_dir):
    status, _, rows = server.post("/embed", {"inputs": TEXTS})
    assert status == 200
    np.testing.assert_allclose(np.array(rows), reference.encode(TEXTS), atol=1e-5)
    status, _, rows = server.post("/embed", {"inputs": "a cat", "normalize": False, "dimensions": 6})
    assert status == 200 and np.array(rows).shape == (1, 6)
    np.testing.assert_allclose(rows[0], reference.encode("a cat", truncate_dim=6, normalize_embeddings=True), atol=1e-5)

    long_text = synthetic_document(MAX_INPUT_TOKENS + 20)
    status, _, rows = server.post("/embed", {"inputs": [long_text], "truncate": True})
    assert status == 200
    np.testing.assert_allclose(rows[0], reference.encode(long_text), atol=1e-5)  # reference truncates at 48 too

    status, _, info = server.request("GET", "/info")
    assert status == 200
    assert info["model_id"] == NAME and info["model_dir"] == str(small_lam_dir) and info["backend"] == "torch"
    assert info["dimension"] == 32 and info["max_input_length"] == MAX_INPUT_TOKENS
    assert info["max_client_batch_size"] == MAX_CLIENT_BATCH and info["max_batch_tokens"] == 16384
    assert info["compute_precision"] == "float32"
    status, _, health = server.request("GET", "/health")
    assert status == 200 and health == {"status": "ok"}


# -- bad input -----------------------------------------------------------------------------
TOO_LONG = synthetic_document(MAX_INPUT_TOKENS + 1)
BAD_REQUESTS = [
    # (route, body, status, words the error message must contain)
    ("/v1/embeddings", b'{"input": ["a", ', 400, "not valid JSON"),
    ("/embed", b"inputs=a", 400, "not valid JSON"),
    ("/v1/embeddings", {"input": 3}, 422, "must be a string or a list of strings"),
    ("/v1/embeddings", {"input": [101, 2023]}, 422, "token-id inputs are not accepted"),
    ("/v1/embeddings", {"input": ["ok", None]}, 422, "item 1 is null"),
    ("/embed", {"inputs": ["ok", ["nested"]]}, 422, "item 1 is a list"),
    ("/v1/embeddings", {"input": "a", "dimensions": "8"}, 422, "dimensions"),
    ("/v1/embeddings", {"input": "a", "encoding_format": "int8"}, 422, "encoding_format"),
    ("/embed", {"inputs": "a", "normalize": "yes"}, 422, "normalize"),
    ("/embed", {"inputs": "a", "truncation_direction": "Left"}, 422, "truncation_direction"),
    ("/v1/embeddings", {"model": "x"}, 422, "input: Field required"),
    ("/v1/embeddings", ["a"], 422, "body"),
    ("/v1/embeddings", {"input": "a", "unknown": 1}, 422, "unknown: Extra inputs are not permitted"),
    ("/v1/embeddings", {"input": []}, 422, "input list is empty"),
    ("/embed", {"inputs": []}, 422, "input list is empty"),
    ("/v1/embeddings", {"input": "a", "dimensions": 0}, 422, "dimensions must lie in [1, 32]"),
    ("/embed", {"inputs": "a", "dimensions": 33}, 422, "dimensions must lie in [1, 32]"),
    ("/v1/embeddings", {"input": ["a"] * (MAX_CLIENT_BATCH + 1)}, 413, f"limit is {MAX_CLIENT_BATCH}"),
    ("/v1/embeddings", {"input": ["short", TOO_LONG]}, 413, f"input 1 is longer than the limit of {MAX_INPUT_TOKENS}"),
    ("/embed", {"inputs": TOO_LONG, "truncate": False}, 413, "longer than the limit"),
]


@pytest.mark.parametrize("route, body, status, words", BAD_REQUESTS, ids=[f"{r}-{s}-{w}" for r, _, s, w in BAD_REQUESTS])
def test_bad_input_gets_its_4xx_with_a_json_error_and_the_server_keeps_serving(server, route, body, status, words):
    got, _, error = server.post(route, body)
    assert got == status, error
    if route == "/embed":
        assert error["error_type"] == "Validation" and words in error["error"]
    else:
        assert error["error"]["type"] == "invalid_request_error" and words in error["error"]["message"]
        assert error["error"]["code"] == status
    assert server.request("GET", "/health")[0] == 200


def test_compute_precision_serves_the_embeddings_of_that_precision(small_lam_dir, tmp_path):
    process = ServerProcess(lam_serve_command(str(small_lam_dir), "--compute-precision", "int8", "--log-level", "warning"),
                            tmp_path / "server.log")
    try:
        status, _, rows = process.post("/embed", {"inputs": TEXTS})
        assert status == 200
        int8 = LAM(small_lam_dir, backend="torch", compute_precision="int8", fallback=False).encode(TEXTS)
        float32 = LAM(small_lam_dir, backend="torch", fallback=False).encode(TEXTS)
        np.testing.assert_allclose(np.array(rows), int8, atol=1e-5)
        assert np.abs(np.array(rows) - float32).max() > 1e-4  # another precision indeed
        assert process.request("GET", "/info")[2]["compute_precision"] == "int8"
    finally:
        assert process.stop() in STOPPED_BY_SIGTERM, process.log()


def test_wrong_method_and_unknown_route(server):
    assert server.request("GET", "/v1/embeddings")[0] == 405
    status, _, error = server.request("GET", "/v2/nothing")
    assert status == 404 and error["error"]["message"] == "Not Found"


# -- metrics -------------------------------------------------------------------------------
def delta(after: dict, before: dict, name: str, **labels) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_metrics_count_what_was_sent(server, reference):
    sent = [["one text"], TEXTS, ["a", "b", "c"]]
    before = metrics(server)
    for texts in sent:
        assert server.post("/v1/embeddings", {"input": texts})[0] == 200
    assert server.post("/embed", {"inputs": "tei"})[0] == 200
    assert server.post("/v1/embeddings", {"input": []})[0] == 422
    assert server.post("/v1/embeddings", b"{")[0] == 400
    after = metrics(server)

    assert delta(after, before, "lam_requests_total", route="/v1/embeddings", status="200") == 3
    assert delta(after, before, "lam_requests_total", route="/embed", status="200") == 1
    assert delta(after, before, "lam_requests_total", route="/v1/embeddings", status="422") == 1
    assert delta(after, before, "lam_requests_total", route="/v1/embeddings", status="400") == 1
    assert delta(after, before, "lam_request_duration_seconds_count", route="/v1/embeddings") == 5
    texts = [t for group in sent for t in group] + ["tei"]
    assert delta(after, before, "lam_batch_size_sum") == len(texts)
    assert delta(after, before, "lam_batch_tokens_sum") == sum(token_count(reference, t) for t in texts)
    batches = delta(after, before, "lam_batch_size_count")
    assert 1 <= batches <= 4  # one request at a time: one batch each
    assert delta(after, before, "lam_inference_duration_seconds_count") == batches
    assert delta(after, before, "lam_inference_duration_seconds_sum") > 0
    assert after[("lam_queue_depth", ())] == 0 and after[("lam_requests_in_flight", ())] == 0


# -- concurrent load -----------------------------------------------------------------------
def test_concurrent_load_every_response_correct_and_no_5xx(server, reference):
    threads, per_thread = 32, 20
    pool = [synthetic_document(n, seed=n) for n in range(3, MAX_INPUT_TOKENS + 1, 3)] + TEXTS
    expected = reference.encode(pool)
    failures: list[str] = []
    before = metrics(server)

    def client(seed: int) -> None:
        rng = np.random.default_rng(seed)
        connection = server.connect(timeout=120)
        try:
            for _ in range(per_thread):
                rows = rng.choice(len(pool), size=int(rng.integers(1, 4)), replace=False)
                route = ["/v1/embeddings", "/embed"][int(rng.integers(2))]
                key = "input" if route != "/embed" else "inputs"
                status, _, body = send(connection, "POST", route, {key: [pool[i] for i in rows]})
                if status != 200:
                    failures.append(f"{route}: {status} {body}")
                    continue
                got = np.array([d["embedding"] for d in body["data"]] if route != "/embed" else body)
                if not np.allclose(got, expected[rows], atol=1e-5, rtol=0):
                    failures.append(f"{route}: wrong rows, max error {np.abs(got - expected[rows]).max():.2e}")
        except Exception as err:  # noqa: BLE001 - every client error is reported by the assertion below
            failures.append(f"{type(err).__name__}: {err}")
        finally:
            connection.close()

    workers = [threading.Thread(target=client, args=(seed,)) for seed in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=300)
    assert not any(w.is_alive() for w in workers), "clients still running after 300 s"
    assert failures == []
    after = metrics(server)
    assert sum(delta(after, before, "lam_requests_total", route=r, status="200")
               for r in ("/v1/embeddings", "/embed")) == threads * per_thread
    # requests were merged: fewer batches than requests
    assert delta(after, before, "lam_batch_size_count") < threads * per_thread


# -- README --------------------------------------------------------------------------------
def readme_block(language: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) == 1, f"README should have exactly one ```{language} block"
    return blocks[0]


def test_readme_serving_examples_run(server, reference, capsys):
    code = readme_block("python serving").replace("http://127.0.0.1:8080", server.base_url)
    namespace = {"__name__": "__readme__"}
    exec(compile(code, "README.md serving block", "exec"), namespace)
    np.testing.assert_allclose(np.array(namespace["vectors"]), reference.encode(namespace["texts"]), atol=1e-5)

    for command in readme_block("bash serving").split("\n\n"):
        words = shlex.split(command.replace("\\\n", " "))
        if words[0] != "curl":
            continue
        url, payload = words[words.index("-s") + 1], words[words.index("-d") + 1]
        path = url.replace("http://127.0.0.1:8080", "")
        status, _, body = server.post(path, payload.encode())
        assert status == 200, body
        assert np.asarray(body["data"][0]["embedding"] if "data" in body else body[0]).shape == (32,)


def test_lam_and_its_cli_do_not_import_the_server_stack():
    code = ("import sys, lam, lam.cli; lam.cli.build_parser(); "
            "print([m for m in ('fastapi', 'uvicorn', 'starlette', 'prometheus_client') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
