"""The command line: light to start, usage errors before any work, `lam build` safeguards."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lam.cli import UNTRAINED_NOTE, main

HEAVY = ("torch", "transformers", "jax", "tokenizers", "safetensors")

# Imports lam and the CLI, builds the parser, then runs two invocations that must fail with a
# usage error; reports which heavy modules were imported meanwhile.
LIGHT_START = r"""
import json, sys
import lam
after_import = sorted(m for m in HEAVY if m in sys.modules)
from lam.cli import build_parser, main
build_parser().format_help()
exits = []
for argv in (["encode", "--backend", "foo", "a cat"], ["encode", "-o", "v.txt", "a cat"]):
    try:
        main(argv)
    except SystemExit as exit:
        exits.append(exit.code)
print(json.dumps({"after_import": after_import, "after_cli": sorted(m for m in HEAVY if m in sys.modules),
                  "exits": exits}))
"""


def test_import_lam_and_usage_errors_load_no_heavy_module():
    run = subprocess.run([sys.executable, "-c", f"HEAVY = {HEAVY!r}\n" + LIGHT_START],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.splitlines()[-1])
    assert result == {"after_import": [], "after_cli": [], "exits": [2, 2]}
    assert "invalid choice: 'foo'" in run.stderr and "must end in .npy or .jsonl" in run.stderr
    assert "Traceback" not in run.stderr


def test_lazy_attributes_still_resolve():
    import lam

    assert lam.LAM.__name__ == "LAM" and lam.LAMModel.__name__ == "LAMModel"
    assert issubclass(lam.BackendFallbackWarning, UserWarning)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        lam.nope  # noqa: B018


def test_build_refuses_an_existing_directory_and_says_the_mixers_are_untrained(tmp_path, capsys):
    target = tmp_path / "my-lam"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(SystemExit, match="already exists; pass --force"):
        main(["build", str(target)])
    assert (target / "keep.txt").read_text() == "mine"
    assert main(["build", str(target), "--force"]) == 0
    assert (target / "model.safetensors").is_file() and not (target / "keep.txt").exists()
    assert UNTRAINED_NOTE in capsys.readouterr().err
