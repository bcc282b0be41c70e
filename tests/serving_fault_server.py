"""TEST-ONLY launcher: `lam serve` with a model whose encode fails or stalls on marked texts.

A batch holding a text with FAIL_MARKER raises; one holding SLOW_MARKER sleeps SLOW_SECONDS
first. Everything else is the real server and the real model (same arguments as `lam serve`).
"""

from __future__ import annotations

import argparse
import sys
import time

from lam import LAM
from lam.serving.server import serve
from lam.serving.settings import add_serve_arguments, settings_from_args

FAIL_MARKER = "[inject-failure]"
SLOW_MARKER = "[inject-delay]"
SLOW_SECONDS = 1.5


def with_faults(model: LAM) -> LAM:
    real_encode = model.encode

    def encode(texts, **kwargs):
        if any(FAIL_MARKER in t for t in texts):
            raise RuntimeError("injected test failure")
        if any(SLOW_MARKER in t for t in texts):
            time.sleep(SLOW_SECONDS)
        return real_encode(texts, **kwargs)

    model.encode = encode
    return model


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    settings = settings_from_args(parser.parse_args(argv))
    serve(settings, with_faults(LAM(settings.model, backend=settings.backend)))


if __name__ == "__main__":
    main(sys.argv[1:])
