"""Optional parts that CI must have: a missing JAX or compiled Cython kernel fails the tests that
need it (no skip), unless LAM_ALLOW_NO_JAX=1 / LAM_ALLOW_NO_CYTHON=1 says this machine lacks it."""

from __future__ import annotations

import importlib
import os

import pytest


def _missing(what: str, reason, allow: str):
    if os.environ.get(allow) == "1":
        pytest.skip(f"{what} is not available ({reason}); {allow}=1", allow_module_level=True)
    pytest.fail(f"{what} is not available ({reason}); install it, or set {allow}=1 where it cannot be", pytrace=False)


def require_jax():
    """The `jax` module, or a failed (LAM_ALLOW_NO_JAX=1: skipped) test or module."""
    try:
        return importlib.import_module("jax")
    except ImportError as error:
        _missing("jax", error, "LAM_ALLOW_NO_JAX")


def require_cython():
    """`lam._cython` with its compiled kernels built, or a failed (LAM_ALLOW_NO_CYTHON=1: skipped) test."""
    import lam._cython as compiled

    if not compiled.AVAILABLE:
        _missing("the compiled kernel lam._cython.delta_rule (build it with `pip install -e .`)",
                 compiled.IMPORT_ERROR, "LAM_ALLOW_NO_CYTHON")
    return compiled
