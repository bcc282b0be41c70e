"""`LAMHyperparameters`: config.json without transformers; `LAMConfig` is its transformers adapter."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lam.config import LAMHyperparameters

SMALL = LAMHyperparameters(hidden_size=32, num_hidden_layers=2, intermediate_size=64, num_heads=4, head_dim=8,
                           num_backward_heads=1, position_policy="none", max_seq_length=128)

# Reads and writes a config.json through lam.config; reports the heavy modules imported meanwhile.
LIGHT_CONFIG = r"""
import json, sys
from lam.config import LAMHyperparameters
config = LAMHyperparameters(num_backward_heads=2)
config.to_json_file(sys.argv[1])
assert LAMHyperparameters.from_json_file(sys.argv[1]) == config
print(json.dumps(sorted(m for m in ("torch", "transformers", "jax", "numpy") if m in sys.modules)))
"""


def test_reading_and_writing_config_json_imports_nothing_heavy(tmp_path):
    run = subprocess.run([sys.executable, "-c", LIGHT_CONFIG, str(tmp_path / "config.json")],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == []


def test_config_json_round_trips_through_both_classes(tmp_path):
    from lam.config import LAMConfig

    SMALL.to_json_file(tmp_path / "config.json", architectures=["LAMModel"])
    written = json.loads((tmp_path / "config.json").read_text())
    assert written["model_type"] == "lam" and written["architectures"] == ["LAMModel"]
    assert LAMHyperparameters.from_json_file(tmp_path / "config.json") == SMALL
    adapter = LAMConfig.from_pretrained(tmp_path)
    assert LAMHyperparameters.of(adapter) == SMALL and adapter.inner_size == SMALL.inner_size == 32
    adapter.save_pretrained(tmp_path / "saved")
    assert LAMHyperparameters.from_json_file(tmp_path / "saved" / "config.json") == SMALL


@pytest.mark.parametrize("fields", [{"position_policy": "rope"}, {"num_backward_heads": 13}, {"num_backward_heads": -1}])
def test_invalid_hyperparameters_raise(fields):
    from lam.config import LAMConfig

    with pytest.raises(ValueError):
        LAMHyperparameters(**fields)
    with pytest.raises(ValueError):
        LAMConfig(**fields)


def test_data_directory_is_read_when_used(tmp_path, monkeypatch):
    from lam.datasets import data_dir, stsb_pairs
    from lam.training import data

    (tmp_path / "stsb").mkdir()
    (tmp_path / "stsb" / "dev.tsv").write_text("score\tsentence1\tsentence2\n4.5\ta cat\ta kitten\n")
    monkeypatch.setenv("LAM_DATA_DIR", str(tmp_path))  # after lam.training.data was imported
    assert data_dir() == tmp_path and data_dir(tmp_path / "other") == tmp_path / "other"
    assert stsb_pairs("dev")[0] == ["a cat"]
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        data.load_wikipedia()
