"""Bad checkpoints give one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch

from clone.cli import main
from clone.model.checkpoint import builtin_path, save_checkpoint
from tests.conftest import tiny_model


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2
    lines = [l for l in err.strip().splitlines() if not l.startswith("loaded ")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for f in fragments:
        assert f in lines[0], lines[0]


def test_truncated_gguf(tmp_path, capsys):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(builtin_path("smollm2-135m").read_bytes()[: 3 << 20])
    code, _, err = run_cli(capsys, "info", str(bad))
    assert_one_line_error(code, err, "broken.gguf")


def test_not_a_gguf(tmp_path, capsys):
    bad = tmp_path / "x.gguf"
    bad.write_text("hello")
    code, _, err = run_cli(capsys, "info", str(bad))
    assert_one_line_error(code, err, "x.gguf", "GGUF")


def test_truncated_safetensors(tmp_path, capsys, smollm2):
    save_checkpoint(tiny_model(), smollm2.tokenizer, tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    code, _, err = run_cli(capsys, "info", str(tmp_path / "m"))
    assert_one_line_error(code, err, "model.safetensors")


def test_directory_without_config(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(capsys, "info", str(tmp_path / "empty"))
    assert_one_line_error(code, err, "no config.json")


def test_unsupported_architecture(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 2}))
    code, _, err = run_cli(capsys, "info", str(tmp_path))
    assert_one_line_error(code, err, "gpt2", "supported")


def test_missing_path(tmp_path, capsys):
    code, _, err = run_cli(capsys, "info", str(tmp_path / "nope"))
    assert_one_line_error(code, err, "no such checkpoint")


def test_weights_not_matching_config(tmp_path, capsys, smollm2):
    save_checkpoint(tiny_model(), smollm2.tokenizer, tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["model"]["layers"][0]["ffn_dim"] = 99
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    code, _, err = run_cli(capsys, "info", str(tmp_path / "m"))
    assert_one_line_error(code, err, "mlp", "(32, 99)")


def test_console_script_exit_code(tmp_path):
    """The installed entry point (not just main()) exits 2 with a single stderr line."""
    exe = shutil.which("clone", path=str(__import__("pathlib").Path(sys.executable).parent))
    assert exe, "console script `clone` is not installed in the venv"
    res = subprocess.run([exe, "info", str(tmp_path / "missing")], capture_output=True, text=True)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "Traceback" not in res.stderr


def test_info_prints_summary(capsys, smollm2):
    code, out, _ = run_cli(capsys, "info", "smollm2-135m")
    assert code == 0
    assert "30 layers" in out and "134,515,008" in out and "heads   9 / kv  3, ffn   1536" in out
