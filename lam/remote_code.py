"""The modeling code that travels inside a saved model directory, so that it loads with
`trust_remote_code=True` in plain transformers / sentence-transformers, without `lam`.

Generated from the package's own plain model: `configuration_lam.py` is `lam/config.py` as it
is, `modeling_lam.py` is `lam/modeling_lam.py` with its one package import pointed at it.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PACKAGE_CONFIG_IMPORT = "from .config import LAMConfig"
DIRECTORY_CONFIG_IMPORT = "from .configuration_lam import LAMConfig"
AUTO_MAP = {"AutoConfig": "configuration_lam.LAMConfig", "AutoModel": "modeling_lam.LAMModel"}


def remote_code_files() -> dict[str, str]:
    """File name -> text of the modeling code written into a model directory."""
    modeling = (PACKAGE_DIR / "modeling_lam.py").read_text()
    if modeling.count(PACKAGE_CONFIG_IMPORT) != 1:
        raise RuntimeError(f"lam/modeling_lam.py must import its config once, as {PACKAGE_CONFIG_IMPORT!r}")
    return {"configuration_lam.py": (PACKAGE_DIR / "config.py").read_text(),
            "modeling_lam.py": modeling.replace(PACKAGE_CONFIG_IMPORT, DIRECTORY_CONFIG_IMPORT)}


def write_remote_code(directory: str | os.PathLike) -> None:
    """Write the modeling code files into `directory` (its config.json names them in `auto_map`)."""
    for name, text in remote_code_files().items():
        (Path(directory) / name).write_text(text)
