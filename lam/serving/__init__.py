"""`lam serve`: an OpenAI- and TEI-compatible embedding server with dynamic batching.

Only `settings` and `cli` are imported by `lam --help`; the server modules (`app`, `server`)
import FastAPI and uvicorn, which come with the `serve` extra.
"""
