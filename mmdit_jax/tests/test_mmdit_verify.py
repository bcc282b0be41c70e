"""`python -m mmdit_jax.verify`: one PASS/FAIL line per check, non-zero exit on failure."""

from mmdit_jax import verify_installation as verify


def test_all_checks_pass(capsys):
    assert verify.main() == 0
    out = capsys.readouterr().out
    assert "jax" in out and "equinox" in out and "mmdit_jax" in out
    assert out.count("PASS") == len(verify.CHECKS)
    assert "FAIL" not in out


def test_required_checks_are_present():
    names = " | ".join(name for name, _ in verify.CHECKS)
    for required in ("basic", "masked", "biased", "batched", "MMDiT forward", "with masks", "vmap",
                     "InContextMMDiT", "gradients", "multiple conditioning"):
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

