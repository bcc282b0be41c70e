"""The `lam serve` subcommand; the server itself is imported only when the command runs."""

from __future__ import annotations

from .settings import add_serve_arguments, settings_from_args


def add_serve_command(commands) -> None:
    """Register `lam serve` on the `lam` subparsers."""
    serve = commands.add_parser(
        "serve", help="an OpenAI- and TEI-compatible embedding server with dynamic batching",
        description="Serve embeddings over HTTP: POST /v1/embeddings (OpenAI), POST /embed (text-embeddings-"
                    "inference), GET /health, /info, /metrics (Prometheus). Needs the `serve` extra.")
    add_serve_arguments(serve)
    serve.set_defaults(func=run_serve)


def run_serve(args) -> int:
    try:
        from .server import serve
    except ImportError as err:
        raise SystemExit(f"lam serve needs the `serve` extra ({err}): pip install 'lam-embeddings[serve]'") from err
    serve(settings_from_args(args))
    return 0
