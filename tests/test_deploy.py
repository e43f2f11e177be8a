"""`clone deploy`: bad input is one line and exit 2 before any model work; a real run on the embedded
SmolLM2 writes the per-request table and summary, with the simulated board's time and energy."""

from __future__ import annotations

import csv
import json

import pytest

from clone.cli import main
from clone.costmodel import CostShape, Workload
from clone.runtime.backends import TorchBackend
from clone.runtime.deploy import Deployment
from clone.runtime.policies import make_policy
from clone.runtime.simboard import SimulatedBoard
from clone.runtime.traces import TraceRequest, save_trace


@pytest.fixture(scope="module")
def model_dir(smollm2, tmp_path_factory):
    from clone.model.checkpoint import save_checkpoint

    return save_checkpoint(smollm2.model, smollm2.tokenizer, tmp_path_factory.mktemp("m") / "smollm2")


@pytest.fixture()
def trace(tmp_path):
    reqs = [TraceRequest("The capital of France is", 4, "chatbot", None, None, 0.0, None, "a"),
            TraceRequest("Once upon a time", 3, "code_completion", None, None, 0.5, None, "b")]
    return save_trace(reqs, tmp_path / "t.jsonl")


def one_line_error(capsys, argv, pattern):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("clone deploy: error:")
    assert pattern in err[0], err[0]


def test_bad_input_one_line_exit_2(capsys, tmp_path, trace):
    not_model = tmp_path / "empty"
    not_model.mkdir()
    bad_trace = tmp_path / "bad.jsonl"
    bad_trace.write_text('{"prompt": "x", "max_new_tokens": 2}\n{"prompt": 3}\n')
    base = ["deploy", str(not_model), "--trace", str(trace)]
    one_line_error(capsys, base + ["--device", "tpu"], "unknown device")
    one_line_error(capsys, base + ["--policy", "turbo"], "unknown policy")
    one_line_error(capsys, base + ["--device", "sim:jetson-orin-nano-8gb", "--policy", "static:gpu=700"],
                   "gpu=700 MHz is not a frequency the board lists")
    one_line_error(capsys, base + ["--device", "sim:no-such-board"], "no-such-board")
    one_line_error(capsys, base, "not a model directory")
    one_line_error(capsys, ["deploy", str(not_model), "--trace", str(bad_trace)], "bad.jsonl:2")


def test_deploy_run_writes_table_and_summary(capsys, tmp_path, model_dir, trace):
    out = tmp_path / "out"
    rc = main(["deploy", str(model_dir), "--device", "sim:jetson-orin-nano-8gb", "--policy", "governor",
               "--trace", str(trace), "--out", str(out), "--quiet"])
    assert rc == 0
    rows = list(csv.DictReader(open(out / "requests.csv")))
    assert [r["id"] for r in rows] == ["a", "b"]
    for r in rows:
        n = int(r["output_tokens"])
        assert 1 <= n <= 4
        assert float(r["energy_J"]) == pytest.approx(float(r["prefill_J"]) + float(r["decode_J"]), rel=1e-4)
        assert float(r["J_per_token"]) == pytest.approx(float(r["energy_J"]) / n, rel=1e-4)
        assert r["met"] in ("True", "False")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["requests"] == 2 and summary["device"] == "sim:jetson-orin-nano-8gb"
    assert "J/token" in capsys.readouterr().out
    texts = [json.loads(l)["text"] for l in open(out / "outputs.jsonl")]
    assert texts[0].strip().startswith("Paris")


def test_board_account_is_the_cost_model_not_the_cpu(smollm2):
    board = SimulatedBoard("jetson-orin-nano-8gb")
    shape = CostShape(smollm2.model.config)
    dep = Deployment(TorchBackend(smollm2.model, 64), smollm2.tokenizer, board, make_policy("max"), shape)
    with dep:
        rec = dep.serve(TraceRequest("The capital of France is", 5, "chatbot", 1000, 200, 0.0, None, "x"))
    n_prompt = rec.prompt_tokens
    rep = board.cost.predict(shape, Workload(n_prompt, rec.output_tokens), board.get_clocks())
    assert rec.ttft_ms == pytest.approx(rep.ttft_s * 1e3, rel=1e-6)
    assert rec.prefill_J == pytest.approx(rep.prefill.energy_J, rel=1e-6)
    assert rec.tpot_ms == pytest.approx(rep.tpot_s * 1e3, rel=1e-3)
    assert rec.ttft_met and rec.tpot_met
    # a lower static EMC clock makes the same request slower on the board (memory-bound decode)
    slow_board = SimulatedBoard("jetson-orin-nano-8gb")
    dep2 = Deployment(TorchBackend(smollm2.model, 64), smollm2.tokenizer, slow_board,
                      make_policy("static:emc=665.6"), shape)
    with dep2:
        rec2 = dep2.serve(TraceRequest("The capital of France is", 5, "chatbot", 1000, 200, 0.0, None, "x"))
    assert rec2.text == rec.text
    assert rec2.tpot_ms > 2 * rec.tpot_ms
    assert rec2.clock_switches == 1 and slow_board.counters.switch_s > 0


class _NoLayerHooks:
    """A backend without layer boundaries (like ONNX Runtime): the meter splits each pass into layers."""

    name = "nohooks"
    supports_layer_hooks = False

    def __init__(self, inner):
        self.inner, self.n_layers = inner, inner.n_layers

    def reset(self, max_len):
        self.inner.reset(max_len)

    def prefill(self, tokens):
        return self.inner.prefill(tokens)

    def decode(self, token):
        return self.inner.decode(token)

    def set_layer_hook(self, hook):
        raise AssertionError("not called for backends without layer hooks")


def test_backend_without_layer_hooks_gets_the_same_board_account(smollm2):
    shape = CostShape(smollm2.model.config)
    recs = []
    for wrap in (lambda b: b, _NoLayerHooks):
        board = SimulatedBoard("jetson-orin-nano-8gb", interference="websearch", seed=3)
        dep = Deployment(wrap(TorchBackend(smollm2.model, 64)), smollm2.tokenizer, board, make_policy("governor"), shape)
        with dep:
            recs.append(dep.serve(TraceRequest("Once upon a time", 6, "chatbot", 1000, 200, 0.0, None, "x")))
        assert not smollm2.model.layer_hooks  # the deployment took its hook off the shared model
    a, b = recs
    assert a.text == b.text
    assert (a.ttft_ms, a.tpot_ms, a.energy_J) == pytest.approx((b.ttft_ms, b.tpot_ms, b.energy_J), rel=1e-9)
