"""A saved LAM directory carries its modeling code: it loads in plain transformers and
sentence-transformers with trust_remote_code=True where `lam` is not installed."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import sysconfig
import warnings
from pathlib import Path

import numpy as np
import pytest

from lam import LAM
from lam.remote_code import AUTO_MAP, remote_code_files

TEXTS = ["A man is playing a guitar on a stage.", "a cat", "", "The stock market fell sharply on Monday."]

# Runs in a virtual environment that sees the project's installed packages (torch,
# transformers, sentence-transformers) but not lam, from a directory outside the repository.
WITHOUT_LAM = r"""
import json, sys
try:
    import lam
except ImportError:
    pass
else:
    sys.exit(f"lam is importable from {lam.__file__}")
import numpy as np, torch
from sentence_transformers import SentenceTransformer
from transformers import AutoModel

path, texts = sys.argv[1], json.loads(sys.argv[2])
st = SentenceTransformer(path, trust_remote_code=True, device="cpu")
auto = AutoModel.from_pretrained(path, trust_remote_code=True).eval()
batch = st.tokenize(texts)
with torch.no_grad():
    hidden = auto(batch["input_ids"], batch["attention_mask"]).last_hidden_state
    pooled = (hidden * batch["attention_mask"][..., None]).sum(1) / batch["attention_mask"].sum(1, keepdim=True)
try:
    AutoModel.from_pretrained(path)
    refusal = None
except ValueError as err:
    refusal = str(err)
open(sys.argv[3], "w").write(json.dumps({"st": st.encode(texts).tolist(),
                  "auto": torch.nn.functional.normalize(pooled, dim=-1).tolist(),
                  "auto_class": type(auto).__module__ + "." + type(auto).__name__,
                  "refusal": refusal}))
"""


def venv_without_lam(root: Path) -> Path:
    """A new venv whose site-packages points at this interpreter's (a plain path line in a
    .pth file: the editable-install hook of lam, itself a .pth, is not processed there)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(site, "project-site-packages.pth").write_text("\n".join(sorted(ours)) + "\n")
    return python


def test_saved_lam_base_v1_loads_without_lam_installed(lam_cache, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LAM("LAM-base-v1", backend="torch")
    saved = model.save(tmp_path / "LAM-base-v1")
    expected = model.encode(TEXTS)
    python = venv_without_lam(tmp_path / "venv")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LAM_CACHE")}
    env.update(HF_HOME=str(tmp_path / "hf-home"), HF_HUB_OFFLINE="1")
    output = tmp_path / "result.json"
    run = subprocess.run([python, "-c", WITHOUT_LAM, str(saved), json.dumps(TEXTS), str(output)], cwd=tmp_path,
                         env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    result = json.loads(output.read_text())
    assert result["auto_class"].startswith("transformers_modules.") and result["auto_class"].endswith(".LAMModel")
    assert np.abs(np.array(result["st"]) - expected).max() <= 1e-5
    assert np.abs(np.array(result["auto"]) - expected).max() <= 1e-5
    assert "trust_remote_code=True" in result["refusal"]


def test_directory_code_is_the_package_code_and_imports_no_lam(small_lam_dir):
    config = json.loads((small_lam_dir / "config.json").read_text())
    assert config["auto_map"] == AUTO_MAP
    package = Path(__file__).resolve().parents[1] / "lam"
    for name, text in remote_code_files().items():
        assert (small_lam_dir / name).read_text() == text
        imports = [node for node in ast.walk(ast.parse(text)) if isinstance(node, (ast.Import, ast.ImportFrom))]
        absolute = {alias.name.split(".")[0] for node in imports if isinstance(node, ast.Import) for alias in node.names}
        absolute |= {node.module.split(".")[0] for node in imports if isinstance(node, ast.ImportFrom) and not node.level}
        relative = {node.module for node in imports if isinstance(node, ast.ImportFrom) and node.level}
        assert absolute <= {"__future__", "dataclasses", "json", "math", "torch", "transformers"}, name
        assert relative <= {"configuration_lam"}, name
    assert remote_code_files()["configuration_lam.py"] == (package / "config.py").read_text()


def test_plain_model_gives_lam_embeddings(small_lam_dir):
    import torch

    from lam import modeling_lam

    ours = LAM(small_lam_dir, backend="torch")
    plain = modeling_lam.LAMModel.from_pretrained(small_lam_dir).eval()
    assert type(plain) is modeling_lam.LAMModel
    batch = ours.tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        embeddings = plain.embed(batch["input_ids"], batch["attention_mask"])
    assert np.abs(embeddings.numpy() - ours.encode(TEXTS)).max() <= 1e-5


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_saved_files_follow_the_umask(small_lam_dir, tmp_path, umask):
    previous = os.umask(umask)
    try:
        saved = LAM(small_lam_dir, backend="torch").save(tmp_path / "saved")
    finally:
        os.umask(previous)
    assert saved.stat().st_mode & 0o777 == 0o777 & ~umask
    for name in ("model.safetensors", "config.json", "modeling_lam.py", "tokenizer.json"):
        assert (saved / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


def test_save_pretrained_of_the_torch_model_carries_the_code(small_lam_dir, tmp_path):
    from lam import LAMModel

    LAMModel.from_pretrained(small_lam_dir).save_pretrained(tmp_path / "saved")
    assert json.loads((tmp_path / "saved" / "config.json").read_text())["auto_map"] == AUTO_MAP
    assert (tmp_path / "saved" / "modeling_lam.py").read_text() == remote_code_files()["modeling_lam.py"]
