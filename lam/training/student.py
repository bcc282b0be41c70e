"""The student: a LAMModel initialised from the teacher, and which of its tensors train."""

from __future__ import annotations

import numpy as np
import torch

from .._torch_model import LAMModel
from ..building import config_from_teacher, initial_tensors
from ..config import LAMConfig, pretrained_config
from ..teacher import teacher_dir, verified_teacher_weights
from .scopes import TRAINABLE_SCOPES


def build_student(position_policy: str = "clamp", seed: int = 0, **overrides) -> tuple[LAMModel, LAMConfig]:
    """A LAMModel (chunkwise form, for autograd) with the teacher's tensors and SPEC §2 mixers."""
    config = pretrained_config(config_from_teacher(teacher_dir(), position_policy=position_policy, **overrides))
    tensors = initial_tensors(config, verified_teacher_weights(), seed)
    model = LAMModel(config)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()}, strict=True)
    model.form = "chunk"
    return model, config


def set_trainable(model: LAMModel, scope: str) -> list[torch.nn.Parameter]:
    """Freeze everything outside `scope`; return the parameters that train."""
    if scope not in TRAINABLE_SCOPES:
        raise ValueError(f"scope must be one of {TRAINABLE_SCOPES}, got {scope!r}")
    last_ffn = f"layers.{len(model.layers) - 1}.ffn_"
    for name, param in model.named_parameters():
        param.requires_grad_(scope == "all" or (scope == "mixers" and ".mixer." in name)
                             or (scope == "last-ffn" and name.startswith(last_ffn)))
    return [p for p in model.parameters() if p.requires_grad]


def changed_tensors(model: LAMModel, seed: int = 0) -> dict[str, np.ndarray]:
    """float32 tensors of `model` that differ from its teacher initialisation."""
    reference = initial_tensors(model.config, verified_teacher_weights(), seed)
    current = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    return {k: v for k, v in current.items() if not np.array_equal(v, reference[k])}


def load_tensors(model: LAMModel, tensors: dict[str, torch.Tensor]) -> None:
    """Copy `tensors` into the model where it has a tensor of that name (e.g. mixers across position policies)."""
    own = model.state_dict()
    usable = {k: v for k, v in tensors.items() if k in own}
    model.load_state_dict(usable, strict=False)
