"""Building a LAM model directory (SPEC §4) from a BERT-style sentence-transformers teacher."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

from .config import LAMHyperparameters
from .remote_code import AUTO_MAP, write_remote_code
from .schema import initial_value, parameters
from .weights_io import WEIGHTS_NAME, write_weights

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")
BERT_CONFIG_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers", "intermediate_size", "hidden_act",
                    "max_position_embeddings", "type_vocab_size", "layer_norm_eps", "pad_token_id")


def config_from_teacher(teacher_path: Path, **overrides) -> LAMHyperparameters:
    """Hyperparameters with the teacher's BERT sizes; heads of 32 dimensions over the same width."""
    bert = json.loads((teacher_path / "config.json").read_text())
    fields = {key: bert[key] for key in BERT_CONFIG_KEYS if key in bert}
    fields["num_heads"] = bert["num_attention_heads"]
    fields["head_dim"] = bert["hidden_size"] // bert["num_attention_heads"]
    fields["num_backward_heads"] = fields["num_heads"] // 2
    fields.update(overrides)
    return LAMHyperparameters(**fields)


def teacher_name_map(config: LAMHyperparameters) -> dict[str, str]:
    """LAM tensor name -> teacher (BertModel) tensor name, for every tensor the teacher provides."""
    return {p.name: p.teacher for p in parameters(config) if p.init == "teacher"}


def initial_tensors(config: LAMHyperparameters, teacher_weights: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """Every LAM tensor (float32): the teacher's where it has one, SPEC §2 initialisation elsewhere
    (drawn from numpy's generator seeded with `seed`, in state-dict order)."""
    teacher = load_file(str(teacher_weights))
    rng = np.random.default_rng(seed)
    tensors = {}
    for parameter in parameters(config):
        if parameter.init != "teacher":
            tensors[parameter.name] = initial_value(parameter, config, rng)
            continue
        value = teacher[parameter.teacher]
        if value.shape != parameter.shape:
            raise ValueError(f"teacher tensor {parameter.teacher} has shape {value.shape}, LAM expects {parameter.shape}")
        tensors[parameter.name] = value.astype(np.float32)
    return tensors


def sentence_transformers_files(config: LAMHyperparameters) -> dict[str, str]:
    """Relative path -> text of the Transformer -> Pooling -> Normalize layout files."""
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    pooling = {
        "word_embedding_dimension": config.hidden_size,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    }
    return {
        "modules.json": json.dumps(modules, indent=2),
        "sentence_bert_config.json": json.dumps({"max_seq_length": config.max_seq_length, "do_lower_case": False}, indent=2),
        "1_Pooling/config.json": json.dumps(pooling, indent=2),
        "2_Normalize/.keep": "",
    }


def set_tokenizer_max_length(tokenizer_config: Path, max_length: int) -> None:
    """Set `model_max_length` (the teacher's says 512) so transformers does not warn on long inputs."""
    fields = json.loads(tokenizer_config.read_text())
    fields["model_max_length"] = max_length
    tokenizer_config.write_text(json.dumps(fields, indent=2))


def write_model_dir(out_dir: str | os.PathLike, config: LAMHyperparameters, tensors: dict[str, np.ndarray],
                    tokenizer_dir: Path, model_card: str | None = None, overwrite: bool = True) -> Path:
    """Write a complete model directory atomically: built beside `out_dir`, then renamed into place.

    An existing `out_dir` is replaced if `overwrite`, else kept (another writer finished first).
    The directory carries its plain modeling code (`lam.remote_code`); modes follow the umask.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.parent / f".{out_dir.name}.{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        LAMHyperparameters.of(config).to_json_file(staging / "config.json", architectures=["LAMModel"],
                                                   auto_map=dict(AUTO_MAP))
        write_remote_code(staging)
        write_weights(tensors, staging / WEIGHTS_NAME)
        for name in TOKENIZER_FILES:
            shutil.copyfile(tokenizer_dir / name, staging / name)
        set_tokenizer_max_length(staging / "tokenizer_config.json", config.max_seq_length)
        for relative, text in sentence_transformers_files(config).items():
            (staging / relative).parent.mkdir(parents=True, exist_ok=True)
            (staging / relative).write_text(text)
        if model_card is not None:
            (staging / "README.md").write_text(model_card)
        if out_dir.exists() and overwrite:
            shutil.rmtree(out_dir)
        try:
            os.replace(staging, out_dir)
        except OSError:
            if overwrite or not (out_dir / WEIGHTS_NAME).is_file():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return out_dir


def build_from_teacher(out_dir: str | os.PathLike, teacher_path: str | os.PathLike | None = None,
                       trained: dict[str, np.ndarray] | None = None, seed: int = 0,
                       model_card: str | None = None, overwrite: bool = True, **config_overrides) -> Path:
    """Convert a sentence-transformers BERT model directory into a LAM model directory.

    `trained` overrides tensors (e.g. distilled mixers); default teacher: all-MiniLM-L6-v2.
    """
    from .teacher import teacher_dir, verified_teacher_weights

    if teacher_path is None:
        teacher_path = teacher_dir()
        weights = verified_teacher_weights(teacher_path)
    else:
        teacher_path = Path(teacher_path)
        weights = teacher_path / "model.safetensors"
    config = config_from_teacher(teacher_path, **config_overrides)
    tensors = initial_tensors(config, weights, seed)
    for name, value in (trained or {}).items():
        if name not in tensors or tensors[name].shape != value.shape:
            raise ValueError(f"trained tensor {name} {value.shape} does not fit the model")
        tensors[name] = value.astype(np.float32)
    return write_model_dir(out_dir, config, tensors, teacher_path, model_card, overwrite)
