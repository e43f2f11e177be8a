"""`clone optimize`: recipes, bad input, and the whole pipeline on a tiny model with the real tokenizer."""

from __future__ import annotations

import json

import pytest
import torch

from clone.cli import main
from clone.errors import CloneError
from clone.model.checkpoint import load_checkpoint, save_checkpoint
from clone.model.config import LayerShape
from clone.optimize import Recipe, load_recipe, optimize
from tests.conftest import tiny_config, tiny_model


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, smollm2):
    """A 10-layer random Llama over SmolLM2's real tokenizer (so corpora tokenize for real)."""
    cfg = tiny_config(layers=[LayerShape(4, 2, 2048)] * 10, vocab_size=smollm2.tokenizer.vocab_size, dim=64,
                      head_dim=16, tie_embeddings=True, max_seq_len=512)
    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    save_checkpoint(tiny_model(cfg), smollm2.tokenizer, path)
    return path


def run(capsys, *argv):
    code = main(list(argv))
    return code, capsys.readouterr()


@pytest.mark.parametrize("flags,fragment", [
    (["--method", "magic"], "method='magic'"),
    (["--profile", "jetson-tx1"], "jetson-tx1"),
    (["--target-ratio", "1.2"], "target_ratio=1.2"),
    (["--target-ratio", "-0.1"], "target_ratio=-0.1"),
    (["--bits", "3"], "bits=3"),
    (["--group-size", "48", "--bits", "4"], "group_size 48"),
    (["--budget-tpot-ms", "0.000001", "--method", "uniform"], "cannot be met"),
])
def test_bad_input_one_line_exit_2_no_output(tmp_path, capsys, tiny_dir, flags, fragment):
    out = tmp_path / "out"
    code, cap = run(capsys, "optimize", str(tiny_dir), "--out", str(out), "--fast", *flags)
    assert code == 2, cap.err
    lines = cap.err.strip().splitlines()
    assert "Traceback" not in cap.err and fragment in lines[-1], cap.err
    assert not out.exists() and not (tmp_path / "out.partial").exists()


def test_recipe_file_unknown_key_and_types(tmp_path):
    bad = tmp_path / "r.yaml"
    bad.write_text("method: uniform\nbitz: 4\n")
    with pytest.raises(CloneError, match="unknown key 'bitz'"):
        load_recipe(bad)
    bad.write_text("bits: four\n")
    with pytest.raises(CloneError, match="bits='four' must be of type int"):
        load_recipe(bad)
    good = tmp_path / "g.yaml"
    good.write_text("optimize:\n  method: shortgpt\n  bits: 8\n  target_ratio: 0.25\n")
    r = load_recipe(good)
    assert (r.method, r.bits, r.target_ratio) == ("shortgpt", 8, 0.25)


def test_pipeline_uniform_int8_on_tiny_model(tmp_path, tiny_dir):
    recipe = Recipe(profile="jetson-orin-nano-8gb", method="uniform", target_ratio=0.15, bits=8, group_size=32,
                    quant_method="rtn", fast=True, recover_steps=3, nsamples=4, seq_len=64, eval_tokens=256,
                    test_tokens=512)
    res = optimize(str(tiny_dir), recipe, tmp_path / "out", log=lambda m: None, progress=False)
    out = res.out_dir
    for name in ("config.json", "model.safetensors", "tokenizer.json", "model.onnx", "report.md", "report.json",
                 "ratios.png", "adapters/recovery"):
        assert (out / name).exists(), name
    rep = json.loads((out / "report.json").read_text())
    assert abs(rep["target"]["removed_fraction"] - 0.15) < 0.02
    # decoder projections packed to INT8 (+ fp16 scale and zero per 32 weights); the rest stays float
    n_q = sum(m.in_features * m.out_features for m in res.model.modules() if hasattr(m, "qweight"))
    assert n_q > 0.9 * (res.model.config.param_count() - res.model.embed_tokens.weight.numel())
    assert rep["bytes"]["optimized_fp16_rest"] < 2 * res.model.embed_tokens.weight.numel() + n_q * (1 + 4 / 32) * 1.02
    assert rep["onnx"]["max_abs_logit_diff"] <= rep["onnx"]["tolerance"]
    # a model this small is launch-bound on a Jetson: fewer bytes save energy, not time
    assert rep["predicted"]["optimized"]["tpot_ms"] <= rep["predicted"]["dense_fp16"]["tpot_ms"]
    assert rep["predicted"]["optimized"]["energy_J"] < rep["predicted"]["dense_fp16"]["energy_J"]
    back = load_checkpoint(out)
    # the logical parameter count: packed INT8 weights count as parameters, not as missing ones
    assert back.model.config.param_count() == rep["params"]["optimized"]
    assert abs(1 - rep["params"]["optimized"] / rep["params"]["dense"] - rep["target"]["removed_fraction"]) < 1e-3
    tokens = torch.randint(0, 1000, (1, 12))
    with torch.no_grad():
        assert torch.equal(back.model(tokens), res.model(tokens))


def test_pipeline_clone_search_resumes_after_interrupt(tmp_path, tiny_dir, monkeypatch):
    from clone.optimize import stages

    recipe = Recipe(method="clone", target_ratio=0.15, fast=True, nsamples=4, seq_len=64, eval_tokens=256,
                    test_tokens=512, n_explore=6, n_exploit=2, n_generate=2, onnx=False)
    calls = {"n": 0}
    real = stages.Stages.evaluate

    def flaky(self, ratios):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(self, ratios)

    monkeypatch.setattr(stages.Stages, "evaluate", flaky)
    with pytest.raises(KeyboardInterrupt):
        optimize(str(tiny_dir), recipe, tmp_path / "out", log=lambda m: None, progress=False)
    records = tmp_path / "out.partial" / "search" / "records.csv"
    assert records.exists() and not (tmp_path / "out").exists()
    done = records.read_text().count("\n") - 1
    assert done == 4
    monkeypatch.setattr(stages.Stages, "evaluate", real)
    seen = []
    monkeypatch.setattr(stages.Stages, "evaluate", lambda self, r: seen.append(r) or real(self, r))
    res = optimize(str(tiny_dir), recipe, tmp_path / "out", log=lambda m: None, progress=False)
    rep = res.report
    assert rep["search"]["records"] >= 8 + 2  # explore + exploit + baselines + generated, none lost
    assert len(seen) == rep["search"]["records"] - done  # finished candidates were not evaluated again
