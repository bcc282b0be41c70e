"""Model files: safetensors only, clear errors for broken or mismatched files, atomic cache writes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file

from lam import LAM
from lam.weights_io import ModelFileError

PACKAGE = Path(__file__).resolve().parents[1] / "lam"


@pytest.fixture
def model_copy(small_lam_dir, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(small_lam_dir, target)
    return target


def rewrite_weights(directory, change):
    tensors = load_file(str(directory / "model.safetensors"))
    change(tensors)
    save_file(tensors, str(directory / "model.safetensors"))


def test_a_pickle_in_place_of_safetensors_is_refused_not_loaded(model_copy):
    torch.save({"layers.0.mixer.q_proj.weight": torch.zeros(2)}, model_copy / "model.safetensors")
    with pytest.raises(ModelFileError, match="model.safetensors: not a readable safetensors file"):
        LAM(model_copy, backend="torch")


def test_missing_weights_file_is_named(model_copy):
    (model_copy / "model.safetensors").unlink()
    torch.save({}, model_copy / "pytorch_model.bin")
    with pytest.raises(ModelFileError, match="model.safetensors: weights file not found"):
        LAM(model_copy, backend="torch")


def test_truncated_weights_file(model_copy):
    path = model_copy / "model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ModelFileError, match="not a readable safetensors file"):
        LAM(model_copy, backend="torch")


def test_corrupted_header(model_copy):
    path = model_copy / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[8:24] = b"\xff" * 16
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="not a readable safetensors file"):
        LAM(model_copy, backend="torch")


def test_missing_and_extra_tensors_are_named(model_copy):
    def change(tensors):
        del tensors["layers.1.mixer.k_conv"]
        tensors["layers.9.surprise"] = np.zeros(3, dtype=np.float32)

    rewrite_weights(model_copy, change)
    with pytest.raises(ModelFileError, match=r"missing: \['layers.1.mixer.k_conv'\], unexpected: \['layers.9.surprise'\]"):
        LAM(model_copy, backend="torch")


def test_wrong_shape_is_named(model_copy):
    rewrite_weights(model_copy, lambda t: t.update({"layers.0.ffn_in.bias": np.zeros(7, dtype=np.float32)}))
    with pytest.raises(ModelFileError, match=r"layers.0.ffn_in.bias \(7,\) != \(64,\)"):
        LAM(model_copy, backend="torch")


def test_config_that_disagrees_with_the_weights(model_copy):
    config = json.loads((model_copy / "config.json").read_text())
    config["intermediate_size"] = 128
    (model_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFileError, match="disagree with config.json"):
        LAM(model_copy, backend="torch")


def test_invalid_config_value(model_copy):
    config = json.loads((model_copy / "config.json").read_text())
    config["position_policy"] = "rotary"
    (model_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="position_policy"):
        LAM(model_copy, backend="torch")


def test_unknown_names_and_escaping_paths(lam_cache):
    with pytest.raises(ValueError, match="unknown model"):
        LAM("LAM-huge-v9")
    with pytest.raises(FileNotFoundError):
        LAM("../../LAM-base-v1")
    with pytest.raises(TypeError):
        LAM(42)


def test_teacher_checksum_is_verified(tmp_path):
    from lam.teacher import teacher_dir, verified_teacher_weights

    assert verified_teacher_weights().is_file()
    fake = tmp_path / "teacher"
    shutil.copytree(teacher_dir(), fake)
    with open(fake / "model.safetensors", "r+b") as handle:
        handle.seek(-4, 2)
        handle.write(b"\x00\x01\x02\x03")
    with pytest.raises(ValueError, match="sha256"):
        verified_teacher_weights(fake)


def test_interrupted_build_leaves_no_model_behind(small_lam_dir, tmp_path, monkeypatch):
    import lam.building as building

    config = LAM(small_lam_dir, backend="torch").config
    tensors = load_file(str(small_lam_dir / "model.safetensors"))

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(building, "write_weights", interrupted)
    with pytest.raises(KeyboardInterrupt):
        building.write_model_dir(tmp_path / "model", config, tensors, small_lam_dir)
    assert list(tmp_path.iterdir()) == []


def test_two_processes_building_the_cache_at_once(tmp_path):
    script = ("import warnings, numpy as np; warnings.simplefilter('ignore'); from lam import LAM; "
              "np.save(__import__('sys').argv[1], LAM('LAM-base-v1', backend='torch').encode(['a cat']))")
    env = {**__import__("os").environ, "LAM_CACHE": str(tmp_path / "cache")}
    runs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / f"{i}.npy")], env=env) for i in range(2)]
    assert [run.wait(timeout=600) for run in runs] == [0, 0]
    np.testing.assert_array_equal(np.load(tmp_path / "0.npy"), np.load(tmp_path / "1.npy"))
    built = [p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")]
    assert len(built) == 1 and (built[0] / "model.safetensors").is_file()
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")]


def test_no_code_path_unpickles():
    # torch.load is allowed only in its restricted weights_only=True mode (training checkpoints).
    pattern = re.compile(r"torch\.load\((?!.*weights_only=True)|pickle\.loads?\(|allow_pickle\s*=\s*True"
                         r"|cloudpickle|joblib\.load")
    offenders = [f"{path.relative_to(PACKAGE.parent)}:{number}"
                 for path in sorted(PACKAGE.rglob("*.py")) + sorted(PACKAGE.rglob("*.pyx"))
                 for number, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert offenders == []
