"""Built-in model names, the user's model cache, and resolving a name or path to a model directory."""

from __future__ import annotations

import hashlib
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
# Built-in name -> files of trained tensors shipped in the package, applied in order over the
# teacher's tensors (the rest comes from the teacher).
BUILTIN_MODELS = {
    "LAM-base-v1": (WEIGHTS_DIR / "lam_base_v1.safetensors",),
    # LAM-base-v1 with its last feed-forward block retrained for long documents (stage 3).
    "LAM-long-v1": (WEIGHTS_DIR / "lam_base_v1.safetensors", WEIGHTS_DIR / "lam_long_v1.safetensors"),
}
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def cache_root() -> Path:
    """`$LAM_CACHE`, else `$XDG_CACHE_HOME/lam`, else `~/.cache/lam`."""
    if os.environ.get("LAM_CACHE"):
        return Path(os.environ["LAM_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lam"


def shipped_weights(name: str) -> tuple[dict, dict]:
    """(tensors, config overrides) of a built-in model's shipped files; empty if none is shipped."""
    tensors, overrides = {}, {}
    for path in BUILTIN_MODELS[name]:
        if not path.is_file():
            continue
        with safe_open(str(path), "np") as handle:
            overrides.update(json.loads((handle.metadata() or {}).get("config_overrides", "{}")))
            for key in handle.keys():
                tensors[key] = handle.get_tensor(key)
    return tensors, overrides


def builtin_dir(name: str) -> Path:
    """The cached directory of a built-in model, built on first use from the teacher and shipped weights."""
    from .building import build_from_teacher

    shipped = BUILTIN_MODELS[name]
    missing = [path.name for path in shipped if not path.is_file()]
    tag = "teacher-init" if missing else hashlib.sha256("".join(map(sha256_of, shipped)).encode()).hexdigest()[:12]
    target = cache_root() / f"{name}-{tag}"
    if (target / "model.safetensors").is_file():
        return target
    if missing:
        warnings.warn(f"{name}: its trained weights ({', '.join(missing)}) are not shipped in this installation; "
                      "using mixers initialised from the teacher's attention (embeddings will be poor)",
                      stacklevel=3)
        shipped = ()
    tensors, overrides = shipped_weights(name) if shipped else ({}, {})
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
