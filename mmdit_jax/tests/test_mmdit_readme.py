"""mmdit_jax/README.md: every ```python block runs as written; every shell command is one the tests exercise."""

import re
from pathlib import Path

import jax.numpy as jnp

README = Path(__file__).resolve().parents[1] / "README.md"
CODE_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.DOTALL | re.MULTILINE)

# Each shell command of the README, and the test that runs or checks it.
SHELL_COMMANDS = {
    "pip install ./mmdit_jax": "test_mmdit_packaging.py builds this wheel",
    'pip install "./mmdit_jax[examples]"': "test_mmdit_packaging.py checks the extra",
    "python -m mmdit_jax.verify_installation": "test_mmdit_verify.py runs the module as __main__",
    "python -m pytest mmdit_jax/tests/": "this suite",
}


def code_blocks(language):
    return [body for lang, body in CODE_BLOCK.findall(README.read_text()) if lang == language]


def shell_commands():
    lines = (line.split("#")[0].strip() for block in code_blocks("bash") for line in block.splitlines())
    return [line for line in lines if line]


def test_every_code_block_is_python_or_bash():
    languages = {lang for lang, _ in CODE_BLOCK.findall(README.read_text())}
    assert languages == {"python", "bash"}
    assert len(code_blocks("python")) >= 8


def test_shell_commands_are_the_covered_ones():
    assert sorted(shell_commands()) == sorted(SHELL_COMMANDS)


def test_documented_extras_exist(wheel_metadata):
    for extra in re.findall(r"\./mmdit_jax\[([\w,]+)\]", README.read_text()):
        for name in extra.split(","):
            assert name in wheel_metadata.get_all("Provides-Extra"), name


def test_readme_python_blocks_run(capsys):
    namespace = {"__name__": "readme_examples"}
    for index, block in enumerate(code_blocks("python")):
        exec(compile(block, f"{README}[python block {index}]", "exec"), namespace)
    out = capsys.readouterr().out
    assert "expected a tuple of 2 timesteps" in out
    assert namespace["chunk"].shape == (namespace["HORIZON"], namespace["ACTION_DIM"])
    losses = namespace["losses"]
    assert all(jnp.isfinite(jnp.asarray(losses))) and losses[-1] < 0.8 * losses[0]
    assert namespace["bf16_text_out"].dtype == jnp.bfloat16
