"""The ```python blocks of mmdit_jax/README.md run as written, in order, in one shared namespace."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks():
    return PYTHON_BLOCK.findall(README.read_text())


def test_readme_covers_every_section():
    text = README.read_text()
    for required in (
        'pip install -e ".[mmdit]"',
        "python -m mmdit_jax.verify",
        "## Quick start",
        "## Attention masks",
        "## Multiple conditioning variables",
        "## Imitation learning",
    ):
        assert required in text
    assert len(python_blocks()) >= 6


def test_readme_examples_run(capsys):
    namespace = {"__name__": "readme_examples"}
    for index, block in enumerate(python_blocks()):
        exec(compile(block, f"{README}[python block {index}]", "exec"), namespace)
    assert namespace["chunk"].shape == (namespace["HORIZON"], namespace["ACTION_DIM"])
    assert "expected a tuple of 2 timesteps" in capsys.readouterr().out
