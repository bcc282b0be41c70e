"""What a speed-seeking user of all-MiniLM-L6-v2 would pick: sentence-transformers' CPU backends.

Every system is built locally from the teacher's directory (`lam.teacher.teacher_dir()`, no
hub): a copy of it in `cache_root()/competitors/` receives sentence-transformers' exports,
reused by later runs:
  - minilm               the torch backend (sentence-transformers' default);
  - minilm-onnx          `backend="onnx"` (exported with optimum);
  - minilm-onnx-O3       `export_optimized_onnx_model(..., "O3")` (graph fusions, approximate GELU);
  - minilm-onnx-int8     `export_dynamic_quantized_onnx_model(..., "avx512_vnni")`;
  - minilm-openvino      `backend="openvino"` (optimum-intel);
  - minilm-openvino-int8 OpenVINO with int8 weights (`load_in_8bit`; activations stay float).
A system whose packages are missing, or whose export fails, is returned as skipped with the
reason; the `compare` extra (`make compare-venv`) installs them all.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

TEACHER = "minilm"
ONNX = "onnx/model.onnx"
QUANTIZED_ONNX = "onnx/model_qint8_avx512_vnni.onnx"
OPTIMIZED_ONNX = "onnx/model_O3.onnx"


def competitor_dir() -> Path:
    """A writable copy of the teacher's directory that holds the exported models (made on first use)."""
    from lam.registry import cache_root
    from lam.teacher import TEACHER_WEIGHTS_SHA256, teacher_dir

    target = cache_root() / "competitors" / f"all-MiniLM-L6-v2-{TEACHER_WEIGHTS_SHA256[:12]}"
    if not (target / "modules.json").is_file():
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(teacher_dir(), partial)
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
    return target


def _sentence_transformer(directory: Path, **kwargs):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(directory), device="cpu", **kwargs)


def _onnx(directory: Path):
    """The fp32 ONNX model, exported (and saved beside the teacher's files) on first use."""
    if (directory / ONNX).is_file():
        return _sentence_transformer(directory, backend="onnx", model_kwargs={"file_name": ONNX})
    model = _sentence_transformer(directory, backend="onnx")
    model.save_pretrained(str(directory))
    return model


def _onnx_variant(directory: Path, file_name: str, export: Callable) -> object:
    if not (directory / file_name).is_file():
        export(_onnx(directory), str(directory))
    return _sentence_transformer(directory, backend="onnx", model_kwargs={"file_name": file_name})


def _onnx_optimized(directory: Path):
    from sentence_transformers.backend import export_optimized_onnx_model

    return _onnx_variant(directory, OPTIMIZED_ONNX,
                         lambda model, path: export_optimized_onnx_model(model, "O3", path))


def _onnx_int8(directory: Path):
    from sentence_transformers.backend import export_dynamic_quantized_onnx_model

    return _onnx_variant(directory, QUANTIZED_ONNX,
                         lambda model, path: export_dynamic_quantized_onnx_model(model, "avx512_vnni", path))


def _openvino(directory: Path):
    return _sentence_transformer(directory, backend="openvino")


def _openvino_int8(directory: Path):
    return _sentence_transformer(directory, backend="openvino", model_kwargs={"load_in_8bit": True})


def _torch(directory: Path):
    return _sentence_transformer(directory)


# name -> (modules it needs, builder of the system from the competitor directory)
COMPETITORS: dict[str, tuple[tuple[str, ...], Callable[[Path], object]]] = {
    TEACHER: (("sentence_transformers",), _torch),
    "minilm-onnx": (("sentence_transformers", "onnxruntime", "optimum.onnxruntime"), _onnx),
    "minilm-onnx-O3": (("sentence_transformers", "onnxruntime", "optimum.onnxruntime"), _onnx_optimized),
    "minilm-onnx-int8": (("sentence_transformers", "onnxruntime", "optimum.onnxruntime"), _onnx_int8),
    "minilm-openvino": (("sentence_transformers", "openvino", "optimum.intel"), _openvino),
    "minilm-openvino-int8": (("sentence_transformers", "openvino", "optimum.intel", "nncf"), _openvino_int8),
}


def missing_module(modules: tuple[str, ...]) -> str | None:
    """The first of `modules` that cannot be imported, with the reason; None if all import."""
    import importlib

    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as err:  # noqa: BLE001 - ImportError, or a broken install raising anything
            return f"{module} is not importable ({type(err).__name__}: {err})"
    return None


def load_competitors(names: tuple[str, ...], progress: Callable[[str], None] = lambda message: None
                     ) -> tuple[dict[str, object], dict[str, str]]:
    """(name -> loaded system, name -> why it was skipped) for the `names` of COMPETITORS."""
    systems, skipped = {}, {}
    directory = None
    for name in names:
        modules, build = COMPETITORS[name]
        reason = missing_module(modules)
        if reason:
            skipped[name] = f"{reason}; `pip install 'lam-embeddings[compare]'` in its own environment " \
                            "(`make compare-venv`) installs sentence-transformers' ONNX and OpenVINO backends"
            continue
        progress(f"loading {name} (sentence-transformers; exported on first use into the LAM cache)")
        try:
            directory = directory or competitor_dir()
            systems[name] = build(directory)
        except Exception as err:  # noqa: BLE001 - reported as skipped, the run goes on
            skipped[name] = f"{type(err).__name__}: {err}"
    return systems, skipped
