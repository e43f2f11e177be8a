"""LoRA experts and the request-wise router: routing mechanics on a tiny random model with the real
tokenizer, expert-set I/O and shape errors, and one short training run on the embedded SmolLM2."""

from __future__ import annotations

import copy

import pytest
import torch

from clone.data.calibration import calibration_samples
from clone.errors import CloneError
from clone.experts import Expert, ExpertSet, Router, embed_tokens, load_experts, routing_weights, save_expert
from clone.experts.embedding import embedding_layer
from clone.lora import add_lora, lm_loss, recover, remove_lora, set_mix
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
