"""`lam compare`: a short default with progress lines, the full grid one flag away, and a
warning when the machine is too busy for timings to mean anything."""

from __future__ import annotations

import pytest

from lam.benchmarking import compare
from lam.cli import build_parser


def settings_for(*argv):
    return compare.settings_from(build_parser().parse_args(["compare", *argv]))


def test_default_is_short_and_full_grid_is_one_flag_away():
    demo, quick, full = settings_for(), settings_for("--quick"), settings_for("--full")
    assert demo.backends == ("torch",) and demo.accuracy_pairs == 300 and not demo.memory
    assert demo.lengths == (512, 4096) and demo.batch_sizes == (1,)
    assert full == compare.Settings() and full.accuracy_pairs is None and full.memory
    assert quick == compare.Settings.quick() and quick.backends == ("torch", "jax")
    assert settings_for("--backends", "torch,jax").backends == ("torch", "jax")
    assert not settings_for("--full", "--no-memory").memory
    with pytest.raises(SystemExit):
        settings_for("--quick", "--full")


def test_load_warning(monkeypatch):
    monkeypatch.setattr(compare.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(compare.os, "getloadavg", lambda: (1.5, 1.0, 1.0))
    assert compare.load_warning() is None
    monkeypatch.setattr(compare.os, "getloadavg", lambda: (5.3, 4.0, 3.0))
    assert "load average (5.3) is above the number of cores (2)" in compare.load_warning()


def test_evenly_spaced_pairs():
    assert compare.evenly_spaced(None, 7).tolist() == list(range(7))
    assert compare.evenly_spaced(3, 7).tolist() == [0, 3, 6]
    assert compare.evenly_spaced(10, 4).tolist() == [0, 1, 2, 3]


def test_a_small_run_reports_progress_and_a_table(teacher_lam_dir, tmp_path, capsys):
    settings = compare.Settings.demo(model=str(teacher_lam_dir), accuracy_pairs=12, lengths=(16, 512), repeats=1,
                                     long_repeats=1, out_dir=tmp_path)
    report = compare.run(settings)
    progress = capsys.readouterr().err
    sentences = report["stsb_speed"]["sentences"]
    for step in ("loading", "accuracy: lam-torch encodes", "accuracy: minilm encodes", f"speed: {sentences} sentences",
                 "speed: documents of 512 tokens"):
        assert step in progress
    assert report["accuracy"]["pairs"] == 12 and set(report["accuracy"]["spearman"]) == {"lam-torch", "minilm"}
    assert report["linear_scaling"]["lam-torch"]["tokens"] == 512
    table = compare.format_table(report)
    assert "STS-B dev (12 pairs" in table and "lam-torch" in table
