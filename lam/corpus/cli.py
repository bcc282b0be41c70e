"""The `lam embed-corpus` command."""

from __future__ import annotations

import argparse
import sys

from .run import DEFAULT_SHARD_SIZE

EPILOG = """examples:
  lam embed-corpus docs.jsonl out/
  lam embed-corpus corpus/ out/ --text-column body --id-column doc_id --workers 2
  lam embed-corpus docs.parquet out/ --ray local          # a Ray cluster on this machine
  lam embed-corpus /shared/docs/ /shared/out/ --ray auto  # join the running Ray cluster

Rerunning the same command after an interruption embeds only the missing shards."""


def add_embed_corpus_command(commands) -> None:
    parser = commands.add_parser(
        "embed-corpus", help="embed a JSONL/Parquet corpus into resumable Parquet shards, locally or on Ray",
        description="Embed every row of INPUT (a .jsonl or .parquet file, or a folder of them) into OUTPUT: "
                    "Parquet shards (id, embedding, token_count) and _manifest.json.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="a .jsonl or .parquet file, or a folder searched for them")
    parser.add_argument("output", help="output folder (created; a rerun resumes it)")
    parser.add_argument("--text-column", default="text", help="field holding the text (default: text)")
    parser.add_argument("--id-column", default=None, help="field holding the id (default: ids are row numbers)")
    parser.add_argument("--model", default="LAM-base-v1", help="built-in name or model directory")
    parser.add_argument("--backend", default="auto", help="auto, torch (alias cython) or jax")
    parser.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE, help="rows per output shard")
    parser.add_argument("--workers", type=int, default=None,
                        help="local worker processes (default: min(4, cores)) or Ray actors (default: cluster CPUs)")
    parser.add_argument("--cpus-per-worker", type=int, default=None,
                        help="threads per worker (default: local, the cores split evenly; Ray, 1 CPU per actor)")
    parser.add_argument("--chunk-size", type=int, default=None, help="rows per task sent to a local worker")
    parser.add_argument("--batch-size", type=int, default=32, help="texts per forward pass")
    parser.add_argument("--max-seq-length", type=int, default=None, help="truncate texts to this many tokens")
    parser.add_argument("--ray", nargs="?", const="auto", default=None, metavar="ADDRESS",
                        help="run on Ray: 'local' starts a cluster here; 'auto' (the default with no value) "
                             "or an address joins one")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_embed_corpus)


def run_embed_corpus(args) -> int:
    from .inputs import CorpusInputError
    from .run import embed_corpus

    for name in ("shard_size", "workers", "cpus_per_worker", "chunk_size", "batch_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise SystemExit(f"lam embed-corpus: --{name.replace('_', '-')} must be >= 1, got {value}")
    try:
        summary = embed_corpus(args.input, args.output, model=args.model, backend=args.backend,
                               text_column=args.text_column, id_column=args.id_column, shard_size=args.shard_size,
                               workers=args.workers, cpus_per_worker=args.cpus_per_worker,
                               chunk_size=args.chunk_size, batch_size=args.batch_size,
                               max_seq_length=args.max_seq_length, ray_address=args.ray,
                               progress=not args.no_progress)
    except CorpusInputError as err:
        raise SystemExit(f"lam embed-corpus: {err}\nFinished shards are kept: fix the input and rerun.") from None
    except (ValueError, ImportError, FileNotFoundError) as err:
        raise SystemExit(f"lam embed-corpus: {err}") from None
    except KeyboardInterrupt:
        print("\nlam embed-corpus: interrupted; rerun the same command to embed the missing shards", file=sys.stderr)
        return 130
    print(format_summary(summary), file=sys.stderr)
    return 0


def format_summary(summary: dict) -> str:
    if summary["shards_written"] == 0:
        return (f"nothing to do: {summary['output']} already holds all {summary['rows']:,} rows "
                f"({summary['tokens']:,} tokens) in {summary['shards']} shards")
    started = (f" (first rows after {summary['first_rows_seconds']:.1f} s)" if "first_rows_seconds" in summary else "")
    return (f"embedded {summary['rows_embedded']:,} rows ({summary['tokens_embedded']:,} tokens) in "
            f"{summary['shards_written']} shards in {summary['seconds']:.1f} s{started}: "
            f"{summary['rows_per_second']:,.1f} rows/s, {summary['tokens_per_second']:,.0f} tokens/s "
            f"({summary['engine']})\n"
            f"kept {summary['shards_kept']} finished shards; {summary['output']} now holds all "
            f"{summary['rows']:,} rows ({summary['tokens']:,} tokens) in {summary['shards']} shards")
