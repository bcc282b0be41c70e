"""The mmdit-jax distribution: its own wheel, every module in it, and no torch or LAM dependency."""

import re
import zipfile
from pathlib import Path

import mmdit_jax

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the source directory the wheel is built from


def requirements(metadata):
    """[(distribution name, extra or None)] from Requires-Dist."""
    result = []
    for line in metadata.get_all("Requires-Dist"):
        name = re.match(r"[A-Za-z0-9_.-]+", line).group(0).lower()
        extra = re.search(r"extra\s*==\s*['\"](\w+)['\"]", line)
        result.append((name, extra.group(1) if extra else None))
    return result


def test_wheel_holds_every_module_and_no_tests(built_wheel):
    with zipfile.ZipFile(built_wheel) as archive:
        shipped = {name for name in archive.namelist() if name.startswith("mmdit_jax/")}
    expected = {f"mmdit_jax/{path.name}" for path in PACKAGE_DIR.glob("*.py")}
    assert shipped == expected
    for documented in ("helpers", "models", "blocks", "layers", "final_layer", "in_context_models",
                       "in_context_blocks", "in_context_final_layer", "verify_installation"):
        assert f"mmdit_jax/{documented}.py" in shipped


def test_metadata_names_the_distribution_and_version(wheel_metadata):
    assert wheel_metadata["Name"] == "mmdit-jax"
    assert wheel_metadata["Version"] == mmdit_jax.__version__


def test_runtime_dependencies_are_jax_equinox_einops_only(wheel_metadata):
    runtime = {name for name, extra in requirements(wheel_metadata) if extra is None}
    assert runtime == {"jax", "equinox", "einops"}


def test_torch_only_through_the_parity_extra(wheel_metadata):
    by_extra = {}
    for name, extra in requirements(wheel_metadata):
        if extra is not None:
            by_extra.setdefault(extra, set()).add(name)
    assert set(wheel_metadata.get_all("Provides-Extra")) == set(by_extra)
    assert by_extra == {"examples": {"optax"}, "test": {"pytest", "optax", "setuptools"}, "parity": {"mmdit"}}
