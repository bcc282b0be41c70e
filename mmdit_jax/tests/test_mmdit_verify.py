"""`python -m mmdit_jax.verify_installation`: one PASS/FAIL line per check, non-zero exit on failure."""

import runpy
import sys

import pytest

from mmdit_jax import verify_installation as verify


def test_documented_command_passes(capsys, monkeypatch):
    """Runs the module as `python -m mmdit_jax.verify_installation` does, in this process."""
    monkeypatch.delitem(sys.modules, "mmdit_jax.verify_installation")  # runpy runs a fresh copy
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("mmdit_jax.verify_installation", run_name="__main__")
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "jax" in out and "equinox" in out and "mmdit_jax" in out
    assert out.count("PASS") == len(verify.CHECKS)
    assert "FAIL" not in out


def test_required_checks_are_present():
    names = " | ".join(name for name, _ in verify.CHECKS)
    for required in ("basic", "masked", "biased", "batched", "MMDiT forward", "with masks", "vmap",
                     "InContextMMDiT", "gradients", "multiple conditioning", "scan", "remat"):
        assert required in names


def test_failure_is_reported_and_exits_non_zero(monkeypatch, capsys):
    def broken():
        raise AssertionError("deliberately broken")

    monkeypatch.setattr(verify, "CHECKS", (("passing check", lambda: None), ("broken check", broken)))
    assert verify.main() == 1
    out = capsys.readouterr().out
    assert "PASS  passing check" in out
    assert "FAIL  broken check: AssertionError: deliberately broken" in out


def test_run_checks_counts_failures(capsys):
    def broken():
        raise ValueError("boom")

    assert verify.run_checks((("a", broken), ("b", broken), ("c", lambda: None))) == 2
    capsys.readouterr()

