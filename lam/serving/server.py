"""Load the model and run the app under uvicorn; SIGTERM lets in-flight requests finish."""

from __future__ import annotations

import logging

import uvicorn

from .app import create_app
from .service import EmbeddingService
from .settings import ServeSettings


def serve(settings: ServeSettings, model=None) -> None:
    """Serve `model` (default: `LAM(settings.model, backend=..., compute_precision=...)` from `settings`)
    until SIGINT or SIGTERM."""
    import torch

    from .. import LAM

    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    if model is None:
        model = LAM(settings.model, backend=settings.backend, compute_precision=settings.compute_precision)
    service = EmbeddingService(model, settings)
    logging.getLogger("lam.serve").info(
        "serving %s (%s backend, %d-d, up to %d tokens per text) on http://%s:%d",
        settings.model_name, model.backend, service.dimension, service.max_input_tokens, settings.host, settings.port)
    config = uvicorn.Config(create_app(service), host=settings.host, port=settings.port, log_level=settings.log_level,
                            access_log=settings.log_level == "debug",
                            timeout_graceful_shutdown=settings.graceful_timeout_s or None)
    uvicorn.Server(config).run()
