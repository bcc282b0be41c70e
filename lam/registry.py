"""Built-in model names, the user's model cache, and resolving a name or path to a model directory."""

from __future__ import annotations

import json
import logging
import os
import re
import warnings
from pathlib import Path

from safetensors import safe_open

from .teacher import sha256_of

logger = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).parent / "weights"
# Built-in name -> file of trained tensors shipped in the package (the rest comes from the teacher).
BUILTIN_MODELS = {"LAM-base-v1": WEIGHTS_DIR / "lam_base_v1.safetensors"}
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def cache_root() -> Path:
    """`$LAM_CACHE`, else `$XDG_CACHE_HOME/lam`, else `~/.cache/lam`."""
    if os.environ.get("LAM_CACHE"):
        return Path(os.environ["LAM_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lam"


def shipped_weights(name: str) -> tuple[dict, dict]:
    """(tensors, config overrides) of a built-in model's shipped file; empty if none is shipped."""
    path = BUILTIN_MODELS[name]
    if not path.is_file():
        return {}, {}
    tensors = {}
    with safe_open(str(path), "np") as handle:
        overrides = json.loads((handle.metadata() or {}).get("config_overrides", "{}"))
        for key in handle.keys():
            tensors[key] = handle.get_tensor(key)
    return tensors, overrides


def builtin_dir(name: str) -> Path:
    """The cached directory of a built-in model, built on first use from the teacher and shipped weights."""
    from .building import build_from_teacher

    shipped = BUILTIN_MODELS[name]
    tag = sha256_of(shipped)[:12] if shipped.is_file() else "teacher-init"
    target = cache_root() / f"{name}-{tag}"
    if (target / "model.safetensors").is_file():
        return target
    if not shipped.is_file():
        warnings.warn(f"{name}: no trained mixer weights are shipped in this installation; "
                      "using mixers initialised from the teacher's attention (embeddings will be poor)",
                      stacklevel=3)
    tensors, overrides = shipped_weights(name)
    logger.info("building %s into %s", name, target)
    card_path = WEIGHTS_DIR / f"{name}.md"
    card = card_path.read_text() if card_path.is_file() else None
    return build_from_teacher(target, trained=tensors, model_card=card, overwrite=False, **overrides)


def resolve_model(name_or_path: str | os.PathLike) -> Path:
    """A model directory for a built-in name or an existing path; clear errors otherwise."""
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"model name or path must be a string or path, got {type(name_or_path).__name__}")
    text = os.fspath(name_or_path)
    if text in BUILTIN_MODELS:
        return builtin_dir(text)
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path}: not a LAM model directory (no config.json)")
        return path
    if _SAFE_NAME.match(text) and not path.exists():
        raise ValueError(f"unknown model {text!r}: not a built-in name ({', '.join(BUILTIN_MODELS)}) nor a directory")
    raise FileNotFoundError(f"{text}: no such model directory")
