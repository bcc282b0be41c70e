"""Shipping: the trained tensors that differ from the teacher, in half precision, with config overrides."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import save_file

from .._torch_model import LAMModel
from .student import changed_tensors

SHIP_DTYPES = {"float16": np.float16, "float32": np.float32}


def rounded(tensors: dict[str, np.ndarray], dtype: str) -> dict[str, np.ndarray]:
    """Tensors cast to `dtype` for storage."""
    return {k: np.ascontiguousarray(v.astype(SHIP_DTYPES[dtype])) for k, v in tensors.items()}


def ship(model: LAMModel, path: Path, config_overrides: dict, dtype: str = "float16",
         base: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Write the model's non-teacher tensors to `path` with metadata {"config_overrides": ...}; return them.
    With `base` (another shipped file's tensors, applied first when loading), only those that differ from it."""
    tensors = changed_tensors(model)
    if base is not None:
        tensors = {k: v for k, v in tensors.items()
                   if k not in base or not np.array_equal(v, base[k].astype(np.float32))}
    tensors = rounded(tensors, dtype)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"format": "pt", "config_overrides": json.dumps(config_overrides)})
    return tensors


def with_tensors(model: LAMModel, tensors: dict[str, np.ndarray]) -> LAMModel:
    """The model after loading `tensors` (as float32) into it."""
    model.load_state_dict({k: torch.from_numpy(v.astype(np.float32)) for k, v in tensors.items()}, strict=False)
    return model
