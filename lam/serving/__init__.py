"""`lam serve`: an OpenAI- and TEI-compatible embedding server with dynamic batching.

settings (options), cli (the subcommand), batcher (dynamic batching), service (limits, token
counts, `dimensions`), schemas (request and response bodies), metrics (Prometheus), app (routes,
errors), server (uvicorn), process (a server subprocess, for benchmarks and tests).
`lam --help` imports only settings and cli; FastAPI, uvicorn and prometheus-client come with
the `serve` extra.
"""
