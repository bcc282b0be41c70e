"""Reading and writing `model.safetensors` (SPEC §4): safetensors only, checked against the config
(the names and shapes of `lam.schema`)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save

from .config import LAMHyperparameters
from .schema import expected_shapes

WEIGHTS_NAME = "model.safetensors"


class ModelFileError(ValueError):
    """A model file is missing, unreadable, or disagrees with its config."""


def read_weights(path: str | os.PathLike, config: LAMHyperparameters) -> dict[str, np.ndarray]:
    """Load float32 arrays from a safetensors file, verifying names and shapes against `config`."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ModelFileError(f"{path}: weights are only read from .safetensors files (never pickle)")
    if not path.is_file():
        raise ModelFileError(f"{path}: weights file not found")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelFileError(f"{path}: not a readable safetensors file ({err})") from err
    expected = expected_shapes(config)
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise ModelFileError(f"{path}: tensors do not match the config (missing: {missing[:5]}, unexpected: {extra[:5]})")
    wrong = [f"{n} {tensors[n].shape} != {expected[n]}" for n in expected if tuple(tensors[n].shape) != expected[n]]
    if wrong:
        raise ModelFileError(f"{path}: tensor shapes disagree with config.json: {'; '.join(wrong[:5])}")
    return {name: np.ascontiguousarray(t, dtype=np.float32) for name, t in tensors.items()}


def write_weights(tensors: dict[str, np.ndarray], path: str | os.PathLike) -> None:
    """Write tensors to `path` atomically (temporary file, then rename); its mode follows the umask."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        # Written by open(), not safetensors' save_file, which creates files with mode 0600.
        with open(tmp, "wb") as handle:
            handle.write(save({k: np.ascontiguousarray(v) for k, v in tensors.items()}, metadata={"format": "pt"}))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
