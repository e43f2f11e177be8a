"""LoRA adapters: no-op at init, recovery fine-tuning, merging, saving, mixtures of adapters."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from clone.errors import CloneError
from clone.lora import (
    LoRALinear,
    adapter_names,
    add_lora,
    load_adapter,
    lm_loss,
    lora_modules,
    merge_lora,
    recover,
    remove_lora,
    save_adapter,
    set_mix,
)
from compression_helpers import single_thread_for_tiny_models, tiny_model, tokens  # noqa: F401


def randomize_b(model, name, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in lora_modules(model).values():
            b = m.lora_adapters[name].B
            b.copy_(torch.randn(b.shape, generator=g) * 0.05)


def test_new_adapter_is_a_no_op_and_wraps_the_targets():
    model, x = tiny_model(), tokens()
    ref = model(x)
    paths = add_lora(model, "a", rank=4, alpha=8, targets=("q_proj", "v_proj", "down_proj"))
    assert len(paths) == 3 * 6 and all(isinstance(model.get_submodule(p), LoRALinear) for p in paths)
    assert type(model.layers[0].self_attn.k_proj) is nn.Linear
    assert torch.equal(model(x), ref)
    a = model.layers[0].self_attn.q_proj.lora_adapters["a"]
    assert a.A.shape == (4, 64) and a.B.shape == (96, 4) and a.scaling == 2.0


def test_recovery_reduces_the_training_loss_and_trains_only_the_adapter():
    model, x = tiny_model(), tokens(8, 32)
    base = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        before = float(lm_loss(model, x))
    result = recover(model, x, steps=40, lr=1e-2, batch_size=8, progress=False)
    with torch.no_grad():
        after = float(lm_loss(model, x))
    assert after < before - 0.3, (before, after)
    assert result.trainable_params == sum(p.numel() for m in lora_modules(model).values() for p in m.lora_adapters.parameters())
    assert len(result.losses) == 40 and result.last_loss < result.first_loss
    state = model.state_dict()
    for k, v in base.items():  # frozen base weights are untouched
        key = k if k in state else k.replace(k.rsplit(".", 1)[0], k.rsplit(".", 1)[0] + ".base")
        assert torch.equal(state[key], v), k


def test_merge_gives_the_same_logits_and_plain_linears():
    model, x = tiny_model(), tokens()
    add_lora(model, "a")
    randomize_b(model, "a")
    unmerged = model(x)
    merge_lora(model)
    assert not lora_modules(model) and type(model.layers[1].mlp.up_proj) is nn.Linear
    torch.testing.assert_close(model(x), unmerged, rtol=1e-5, atol=1e-5)


def test_adapter_saves_separately_and_loads_back(tmp_path):
    model, x = tiny_model(), tokens()
    add_lora(model, "expert", rank=4, alpha=16)
    randomize_b(model, "expert")
    with_adapter = model(x)
    out = save_adapter(model, tmp_path / "lora", "expert", {"corpus": "shakespeare"})
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["rank"] == 4 and config["alpha"] == 16 and len(config["targets"]) == 7
    assert (out / "adapter.safetensors").exists()
    fresh = tiny_model()
    assert not torch.equal(fresh(x), with_adapter)
    assert load_adapter(fresh, out) == "expert"
    assert torch.equal(fresh(x), with_adapter)
    other = tiny_model(n_layers=4)
    with pytest.raises(CloneError, match="another model shape"):
        load_adapter(other, out)


def test_soft_mixture_of_adapters_with_per_request_weights():
    model, x = tiny_model(), tokens(2, 16)
    add_lora(model, "a", seed=1)
    add_lora(model, "b", seed=2)
    randomize_b(model, "a", seed=1)
    randomize_b(model, "b", seed=2)
    assert adapter_names(model) == ["a", "b"]
    outs = {}
    for wa, wb in ((1.0, 0.0), (0.0, 1.0), (0.3, 0.7)):
        set_mix(model, {"a": wa, "b": wb})
        outs[(wa, wb)] = model(x)
    # per request: row 0 uses only adapter a, row 1 only adapter b
    set_mix(model, {"a": torch.tensor([1.0, 0.0]), "b": torch.tensor([0.0, 1.0])})
    mixed = model(x)
    torch.testing.assert_close(mixed[0], outs[(1.0, 0.0)][0])
    torch.testing.assert_close(mixed[1], outs[(0.0, 1.0)][1])
    # one layer's output is linear in the mixing weights: y = W0 x + sum_j w_j B_j A_j x
    q = model.layers[0].self_attn.q_proj
    h = torch.randn(3, 64)
    set_mix(model, {"a": 0.3, "b": 0.7})
    expected = q.base(h) + 0.3 * q.lora_adapters["a"](h) + 0.7 * q.lora_adapters["b"](h)
    torch.testing.assert_close(q(h), expected)
    with pytest.raises(CloneError, match="unknown LoRA adapter"):
        set_mix(model, {"c": 1.0})
    remove_lora(model, "a")
    assert adapter_names(model) == ["b"]
    remove_lora(model)
    assert not lora_modules(model)


def test_lora_on_a_quantized_base_runs_but_does_not_merge(tmp_path):
    from clone.model.checkpoint import save_checkpoint
    from clone.quant import QuantLinear, quantize_model

    model, x = tiny_model(), tokens()
    quantize_model(model, 4, 32)
    ref = model(x)
    add_lora(model, "a")
    assert isinstance(model.layers[0].self_attn.q_proj.base, QuantLinear)
    assert torch.equal(model(x), ref)
    result = recover(model, x, steps=5, lr=1e-2, batch_size=4, name="a", progress=False)
    assert len(result.losses) == 5
    with pytest.raises(CloneError, match="merge adapters before quantizing"):
        merge_lora(model)
    with pytest.raises(CloneError, match="LoRA adapters"):
        save_checkpoint(model, None, tmp_path / "m")


def test_smollm2_recovery_after_pruning_lowers_held_out_loss(smollm2):
    """A short LoRA recovery of a 20%-pruned SmolLM2 lowers the loss on held-out Shakespeare windows."""
    from clone.data.calibration import calibration_samples
    from clone.prune import prune_model, uniform_ratios

    tok = smollm2.tokenizer
    train = calibration_samples(tok, "shakespeare", "train", n_samples=32, seq_len=64, seed=0)
    held = calibration_samples(tok, "shakespeare", "validation", n_samples=4, seq_len=64, seed=1)
    calib = train[:8]
    model = prune_model(smollm2.model, uniform_ratios(smollm2.model.config, 0.2), "fluctuation", calib)
    with torch.no_grad():
        before = float(lm_loss(model, held))
    recover(model, train, steps=12, lr=1e-3, batch_size=4, progress=False)
    with torch.no_grad():
        after = float(lm_loss(model, held))
    assert after < before - 0.05, (before, after)  # measured 5.28 -> 4.90
