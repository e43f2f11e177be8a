"""LoRA experts and the request-wise router: routing mechanics on a tiny random model with the real
tokenizer, expert-set I/O and shape errors, validation calibration, the router inside a Deployment
(board charge, per-request weights) and `clone deploy --experts` on the embedded SmolLM2, and one short
training run on the embedded SmolLM2."""

from __future__ import annotations

import copy
import csv
import json
import math

import pytest
import torch

from clone.cli import main
from clone.costmodel import CostShape
from clone.data.calibration import calibration_samples
from clone.errors import CloneError
from clone.experts import (Expert, ExpertSet, Router, RouterConfig, calibrate, embed_tokens, load_experts,
                           mix_weights, routing_weights, save_expert, validation_sets)
from clone.experts.embedding import embedding_layer
from clone.lora import add_lora, lm_loss, recover, remove_lora, set_mix
from clone.lora.adapter import lora_modules
from clone.runtime.backends import TorchBackend
from clone.runtime.deploy import Deployment
from clone.runtime.policies import make_policy
from clone.runtime.server import make_server
from clone.runtime.simboard import SimulatedBoard
from clone.runtime.traces import TraceRequest, save_trace
from tests.compression_helpers import single_thread_for_tiny_models, tiny_model  # noqa: F401

VOCAB = 49152  # SmolLM2's tokenizer


def _model(**kw):
    return tiny_model(vocab=VOCAB, n_layers=3, **kw)


def _random_adapters(model, names):
    for i, n in enumerate(names):
        add_lora(model, n, seed=i)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_adapters" in name and name.endswith(".B"):  # B starts at zero: make adapters act
                p.normal_(0, 0.05)


def test_weights_sum_to_one_top1_one_hot_uniform_flat():
    req, experts = torch.randn(5, 16), torch.randn(3, 16)
    soft = routing_weights(req, experts, "soft", tau=0.1)
    assert torch.allclose(soft.sum(1), torch.ones(5)) and (soft > 0).all()
    top = routing_weights(req, experts, "top1")
    assert torch.equal(top.sum(1), torch.ones(5)) and set(top.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(top.argmax(1), soft.argmax(1))
    assert torch.allclose(routing_weights(req, experts, "uniform"), torch.full((5, 3), 1 / 3))
    with pytest.raises(CloneError, match="mode"):
        routing_weights(req, experts, "top2")


def test_request_routes_to_its_domain(smollm2):
    """Expert embeddings made distinct by taking them from the very windows the requests come from:
    a random model has no topic sense, but its pooled states still separate token statistics."""
    model = _model()
    tok = smollm2.tokenizer
    layer = embedding_layer(model)
    domains = ["shakespeare", "techprose", "bible"]
    requests = {d: calibration_samples(tok, d, "validation", 8, 128, 3) for d in domains}
    experts = [Expert(d, embed_tokens(model, requests[d], layer).mean(0)) for d in domains]
    router = Router(model, ExpertSet(experts, layer), tau=0.05)
    for j, d in enumerate(domains):
        w = router.weights_for(requests[d])
        assert int(w.mean(0).argmax()) == j and float(w[:, j].mean()) > 0.5, (d, w)


def test_mixture_all_on_one_expert_equals_only_that_adapter():
    model = _model()
    _random_adapters(model, ["a", "b", "c"])
    x = torch.randint(0, VOCAB, (2, 16), generator=torch.Generator().manual_seed(0))
    set_mix(model, {"a": torch.tensor([0.0, 0.0]), "b": torch.tensor([1.0, 1.0]), "c": torch.tensor([0.0, 0.0])})
    mixed = model(x)
    other = copy.deepcopy(model)
    remove_lora(other, "a")
    remove_lora(other, "c")
    set_mix(other, {"b": 1.0})
    assert torch.allclose(mixed, other(x), atol=1e-5)
    set_mix(model, {})
    assert not torch.allclose(mixed, model(x), atol=1e-4)  # the adapter does change the output


def test_save_load_expert_set_and_shape_mismatch(tmp_path):
    model = _model()
    _random_adapters(model, ["a", "b"])
    layer = embedding_layer(model)
    for i, n in enumerate(["a", "b"]):
        save_expert(model, tmp_path, Expert(n, torch.randn(64, generator=torch.Generator().manual_seed(i))), layer)
    x = torch.randint(0, VOCAB, (1, 16), generator=torch.Generator().manual_seed(0))
    set_mix(model, {"a": 0.3, "b": 0.7})
    ref = model(x)
    fresh = _model()
    es = load_experts(fresh, tmp_path)
    assert es.names == ["a", "b"] and es.layer == layer
    assert torch.allclose(es.embeddings()[0], torch.randn(64, generator=torch.Generator().manual_seed(0)))
    set_mix(fresh, {"a": 0.3, "b": 0.7})
    assert torch.allclose(fresh(x), ref, atol=1e-5)
    with pytest.raises(CloneError, match=r"expert 'a'.*another model shape.*ffn"):
        load_experts(_model(ffn_dim=64), tmp_path)
    with pytest.raises(CloneError, match=r"no expert\(s\) \['zzz'\]"):
        load_experts(_model(), tmp_path, ["zzz"])


def test_expert_lowers_its_domain_loss(smollm2):
    model = copy.deepcopy(smollm2.model)
    tok = smollm2.tokenizer
    held_out = calibration_samples(tok, "bible", "validation", 4, 65, 7)
    with torch.no_grad():
        before = float(lm_loss(model, held_out))
    recover(model, calibration_samples(tok, "bible", "train", 16, 65, 0), steps=6, lr=2e-3,
            name="bible", batch_size=2, warmup=1, progress=False)
    with torch.no_grad():
        after = float(lm_loss(model, held_out))
    assert after < before - 0.05, (before, after)


def test_chunked_weights_give_a_mixed_request_a_mixture():
    """Chunk 0 sits on expert a, chunk 1 on expert b: per-chunk softmax then a token-weighted mean gives
    each its share, where one whole-prompt mean would fall between them; tau = inf is uniform."""
    experts = torch.eye(3) * 4
    chunks = torch.stack([experts[0], experts[1]])[None]  # [1, C=2, d]
    w = mix_weights(chunks, torch.tensor([24.0, 8.0]), experts, "soft", tau=0.01)
    assert torch.allclose(w, torch.tensor([[0.75, 0.25, 0.0]]), atol=1e-4)
    assert torch.allclose(mix_weights(chunks, torch.tensor([1.0, 1.0]), experts, "soft", math.inf), torch.full((1, 3), 1 / 3))
    top = mix_weights(chunks, torch.tensor([24.0, 8.0]), experts, "top1")
    assert top.tolist() == [[1.0, 0.0, 0.0]]


def _tiny_experts(tmp_path, names=("shakespeare", "techprose"), **kw):
    """A tiny model with random LoRA experts saved under tmp_path (embeddings random too)."""
    model = _model(**kw)
    _random_adapters(model, list(names))
    for i, n in enumerate(names):
        save_expert(model, tmp_path, Expert(n, torch.randn(64, generator=torch.Generator().manual_seed(i))),
                    embedding_layer(model))
    return tmp_path


def test_calibration_minimises_validation_loss_and_round_trips(smollm2, tmp_path):
    model = _model()
    es = load_experts(model, _tiny_experts(tmp_path))
    router = Router(model, es, prefix=32)
    sets = validation_sets(smollm2.tokenizer, es.names, n=2, seq_len=33)
    assert sorted(sets) == ["shakespeare", "shakespeare+techprose", "techprose"]
    cfg = calibrate(router, sets, taus=(0.1, 1.0, math.inf), chunks=(0, 16), progress=False)
    best = min(cfg.scores, key=lambda r: r["nll"])
    assert (router.chunk, router.tau) == (cfg.chunk, cfg.tau) == (best["chunk"], best["tau"])
    assert [r["chunk"] for r in cfg.scores if math.isinf(r["tau"])] == [0]  # uniform scored once
    cfg.save(tmp_path)
    back = RouterConfig.load(tmp_path)
    assert back == cfg and back.calibrated
    assert Router.from_dir(_model(), tmp_path).tau == cfg.tau


def _tiny_deployment(model, tokenizer, router=None):
    board = SimulatedBoard("jetson-orin-nano-8gb")
    return board, Deployment(TorchBackend(model, 96), tokenizer, board, make_policy("max"), CostShape(model.config),
                             router=router)


def test_deployment_routes_each_request_and_charges_the_pass(smollm2, tmp_path):
    """Shapes only (tiny random model): weights recorded and installed per request, sum to 1, top1 is
    one-hot, and the router pass costs exactly its layers of board time in TTFT and energy in prefill."""
    model = _model()
    es = load_experts(model, _tiny_experts(tmp_path))
    reqs = [TraceRequest("To be, or not to be, that is the question", 3, "chatbot", id="a"),
            TraceRequest("The function returns a list of integers", 3, "chatbot", id="b")]
    recs = {}
    for mode in ("soft", "top1", None):
        board, dep = _tiny_deployment(model, smollm2.tokenizer, Router(model, es, mode, tau=0.1) if mode else None)
        with dep:
            recs[mode] = [dep.serve(r) for r in reqs]
            if mode:
                last = json.loads(recs[mode][-1].expert_weights)
                mix = next(iter(lora_modules(model).values())).mix
                assert mix == pytest.approx(last, abs=1e-6)  # the request's weights are the installed mixture
                assert dep.summary()["router"]["mode"] == mode
    for rec in recs["soft"]:
        assert sum(json.loads(rec.expert_weights).values()) == pytest.approx(1, abs=1e-5)
    assert all(sorted(json.loads(r.expert_weights).values()) == [0.0, 1.0] for r in recs["top1"])
    assert recs[None][0].expert_weights == ""
    check = SimulatedBoard("jetson-orin-nano-8gb")
    check.bind(CostShape(model.config))
    n = recs[None][0].prompt_tokens
    steps = [check.run_layer(i, n, 0) for i in range(es.layer + 1)]
    routed, plain = recs["soft"][0], recs[None][0]
    assert routed.ttft_ms - plain.ttft_ms == pytest.approx(sum(s.time_s for s in steps) * 1e3, rel=1e-6)
    assert routed.prefill_J - plain.prefill_J == pytest.approx(sum(s.energy_J for s in steps), rel=1e-6)


def test_serve_reports_the_weights(smollm2, tmp_path):
    import http.client
    import threading

    model = _model()
    board, dep = _tiny_deployment(model, smollm2.tokenizer, Router(model, load_experts(model, _tiny_experts(tmp_path))))
    srv = make_server(dep, "127.0.0.1", 0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        conn = http.client.HTTPConnection(*srv.server_address[:2], timeout=60)
        conn.request("POST", "/v1/completions", json.dumps({"prompt": "Thou art", "max_tokens": 2}),
                     {"Content-Type": "application/json"})
        body = json.loads(conn.getresponse().read())
    finally:
        srv.shutdown()
        srv.server_close()
        dep.close()
    w = body["clone"]["expert_weights"]
    assert set(w) == {"shakespeare", "techprose"} and sum(w.values()) == pytest.approx(1, abs=1e-5)


@pytest.fixture(scope="module")
def smollm2_experts(smollm2, tmp_path_factory):
    """Two SmolLM2 experts (random adapters) whose embeddings come from each domain's train windows, as
    clone train-experts makes them, plus a router.json; and prompts from each domain's test split."""
    out = tmp_path_factory.mktemp("experts")
    model, tok = copy.deepcopy(smollm2.model), smollm2.tokenizer
    layer = embedding_layer(model)
    for i, d in enumerate(["shakespeare", "techprose"]):
        add_lora(model, d, seed=i)
        emb = embed_tokens(model, calibration_samples(tok, d, "train", 4, 64, 1), layer).mean(0)
        save_expert(model, out, Expert(d, emb), layer)
    RouterConfig(tau=0.1, calibrated=True).save(out)
    prompts = {d: tok.decode(calibration_samples(tok, d, "test", 1, 48, 5)[0].tolist()) for d in ("shakespeare", "techprose")}
    return out, prompts


def _deploy_rows(tmp_path, experts, prompts, route):
    trace = save_trace([TraceRequest(p, 2, "chatbot", id=d) for d, p in prompts.items()], tmp_path / "t.jsonl")
    out = tmp_path / route
    assert main(["deploy", "smollm2-135m", "--device", "sim:jetson-orin-nano-8gb", "--trace", str(trace),
                 "--experts", str(experts), "--route", route, "--out", str(out), "--quiet"]) == 0
    rows = list(csv.DictReader(open(out / "requests.csv")))
    outputs = [json.loads(line) for line in open(out / "outputs.jsonl")]
    assert [o["expert_weights"] for o in outputs] == [json.loads(r["expert_weights"]) for r in rows]
    return {r["id"]: json.loads(r["expert_weights"]) for r in rows}


def test_deploy_with_experts_soft(tmp_path, smollm2_experts):
    experts, prompts = smollm2_experts
    weights = _deploy_rows(tmp_path, experts, prompts, "soft")
    for d, w in weights.items():
        assert sum(w.values()) == pytest.approx(1, abs=1e-5)
        assert max(w, key=w.get) == d, weights  # each domain's prompt leans to its own expert


def test_deploy_with_experts_top1(tmp_path, smollm2_experts):
    experts, prompts = smollm2_experts
    weights = _deploy_rows(tmp_path, experts, prompts, "top1")
    assert weights == {"shakespeare": {"shakespeare": 1.0, "techprose": 0.0},
                       "techprose": {"shakespeare": 0.0, "techprose": 1.0}}


def test_deploy_experts_bad_input_one_line(capsys, tmp_path):
    trace = save_trace([TraceRequest("Hello", 2, id="a")], tmp_path / "t.jsonl")
    tiny = _tiny_experts(tmp_path / "tiny")
    base = ["deploy", "smollm2-135m", "--device", "sim:jetson-orin-nano-8gb", "--trace", str(trace)]
    for extra, pattern in [(["--experts", str(tiny)], "expert 'shakespeare'"),  # after the model loads
                           (["--experts", str(tiny), "--backend", "onnx"], "--experts needs --backend torch"),
                           (["--experts", str(tmp_path)], "no experts/ directory"),
                           (["--route", "top1"], "--route needs --experts"),
                           (["--experts", str(tiny), "--route", "top2"], "--route 'top2' is not valid")]:
        assert main(base + extra) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("clone deploy: error:") and pattern in err[0], err
        assert "another model shape" in err[0] or extra != ["--experts", str(tiny)]


def test_old_pooling_refused_until_reembedded(smollm2, tmp_path):
    from safetensors.torch import save_file

    from clone.experts.expert_set import reembed_experts

    d = _tiny_experts(tmp_path) / "experts" / "shakespeare"
    save_file({"embedding": torch.randn(64), "layer": torch.tensor(1)}, str(d / "embedding.safetensors"))
    with pytest.raises(CloneError, match=r"expert 'shakespeare'.*older pooling.*--recalibrate"):
        load_experts(_model(), tmp_path)
    reembed_experts(_model(), smollm2.tokenizer, tmp_path, k_embed=2, seq_len=16)
    assert load_experts(_model(), tmp_path).names == ["shakespeare", "techprose"]
