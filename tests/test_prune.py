"""Structured pruning: shapes, GQA groups, importance methods, baseline ratio generators."""

from __future__ import annotations

import pytest
import torch

from clone.errors import CloneError
from clone.model.config import LayerShape
from clone.prune import (
    BASELINES,
    METHODS,
    baseline_ratios,
    block_influence,
    compute_importance,
    params_removed,
    prune_model,
    pruned_config,
    random_ratios,
    removed_fraction,
    shape_for_ratio,
    shortgpt_ratios,
    uniform_ratios,
)
from compression_helpers import single_thread_for_tiny_models, tiny_config, tiny_model, tokens  # noqa: F401


def masked_copy(model, layer: int, groups=(), channels=()):
    """The dense model with the given KV groups / FFN channels silenced (o_proj / down_proj columns 0):
    what a correct pruning of exactly those structures must compute."""
    import copy

    ref = copy.deepcopy(model)
    cfg = model.config
    shape = cfg.layers[layer]
    per = shape.n_heads // shape.n_kv_heads
    with torch.no_grad():
        for g in groups:
            cols = slice(g * per * cfg.head_dim, (g + 1) * per * cfg.head_dim)
            ref.layers[layer].self_attn.o_proj.weight[:, cols] = 0
        for c in channels:
            ref.layers[layer].mlp.down_proj.weight[:, c] = 0
    return ref


@pytest.mark.parametrize("method", ["magnitude", "random", "taylor"])
def test_zero_ratios_keep_logits_identical(method):
    model, x = tiny_model(), tokens()
    pruned = prune_model(model, [0.0] * model.config.n_layers, method, calib=x)
    assert pruned is not model and pruned.config.layers == model.config.layers
    assert torch.equal(pruned(x), model(x))
    assert pruned.layers[0].mlp.up_proj.weight.data_ptr() != model.layers[0].mlp.up_proj.weight.data_ptr()


def test_pruned_model_matches_masked_dense_model_and_is_smaller():
    """Pruning the lowest-magnitude KV group / channels equals silencing them in the dense model."""
    model, x = tiny_model(qkv_bias=True), tokens()
    with torch.no_grad():  # make KV group 1 of layer 2 and channels 5, 9 of layer 1 the weakest
        per, hd = 3, 16
        attn = model.layers[2].self_attn
        for proj in (attn.q_proj,):
            proj.weight[per * hd: 2 * per * hd] *= 1e-3
        for proj in (attn.k_proj, attn.v_proj):
            proj.weight[hd: 2 * hd] *= 1e-3
        attn.o_proj.weight[:, per * hd: 2 * per * hd] *= 1e-3
        for c in (5, 9):
            model.layers[1].mlp.gate_proj.weight[c] *= 1e-3
            model.layers[1].mlp.up_proj.weight[c] *= 1e-3
            model.layers[1].mlp.down_proj.weight[:, c] *= 1e-3
    cfg = model.config
    ratios = [0.0] * cfg.n_layers
    ratios[2] = 0.3  # one of two KV groups plus a few channels (balanced split)
    ratios[1] = 2 * 3 * cfg.dim / cfg.layer_params(cfg.layers[1])  # exactly two FFN channels
    pruned = prune_model(model, ratios, "magnitude")
    assert pruned.config.layers[2].n_kv_heads == 1 and pruned.config.layers[2].n_heads == 3
    assert pruned.config.layers[1] == LayerShape(6, 2, 94)
    assert pruned.config.layers[2] == shape_for_ratio(cfg, cfg.layers[2], 0.3)
    ffn2 = pruned.config.layers[2].ffn_dim
    # silence the same structures in the dense model: removed FFN channels of layer 2 are the
    # lowest-magnitude ones, found the same way
    from clone.prune import compute_importance as ci

    scores = ci(model, "magnitude").layers[2].channels
    dropped = sorted(range(96), key=lambda j: (-float(scores[j]), j))[ffn2:]
    ref = masked_copy(masked_copy(model, 2, groups=[1], channels=dropped), 1, channels=[5, 9])
    torch.testing.assert_close(pruned(x), ref(x), rtol=1e-4, atol=1e-4)
    assert pruned.param_count() == pruned.config.param_count() < model.param_count()
    assert model.param_count() - pruned.param_count() == params_removed(cfg, ratios)
    attn = pruned.layers[2].self_attn
    assert attn.q_proj.weight.shape == (3 * 16, 64) and attn.k_proj.weight.shape == (16, 64)
    assert attn.q_proj.bias.shape == (48,) and attn.o_proj.weight.shape == (64, 48)
    # the kept KV group is group 0: its k rows and its three query heads are copied unchanged
    torch.testing.assert_close(attn.k_proj.weight, model.layers[2].self_attn.k_proj.weight[:16])
    torch.testing.assert_close(attn.q_proj.weight, model.layers[2].self_attn.q_proj.weight[:48])


def test_pruned_model_runs_with_kv_cache_and_removed_layers():
    model, x = tiny_model(), tokens(2, 24)
    ratios = [0.0, 0.3, 1.0, 0.6, 0.95, 0.1]
    pruned = prune_model(model, ratios, "random", seed=3)
    assert pruned.config == pruned_config(model.config, ratios)
    assert pruned.config.layers[2] == LayerShape(0, 0, 0)
    assert pruned.layers[2].self_attn is None and pruned.layers[2].mlp is None
    full = pruned(x)
    cache = pruned.new_cache(2, 64)
    parts = [pruned(x[:, :10], cache=cache)] + [pruned(x[:, t:t + 1], cache=cache) for t in range(10, 24)]
    torch.testing.assert_close(torch.cat(parts, 1), full, rtol=1e-4, atol=1e-4)


def test_shape_rule_meets_ratio_and_balances_attention_and_mlp():
    from clone.model.config import ModelConfig

    cfg = ModelConfig.uniform(arch="llama", vocab_size=49152, dim=576, head_dim=64, n_layers=30, n_heads=9,
                              n_kv_heads=3, ffn_dim=1536, tie_embeddings=True)
    shape, P = cfg.layers[0], cfg.layer_params(cfg.layers[0])
    for r in [0.05, 0.1, 0.2, 0.37, 0.5, 0.8, 0.99]:
        new = shape_for_ratio(cfg, shape, r)
        removed = P - cfg.layer_params(new)
        assert abs(removed - r * P) <= 3 * cfg.dim, (r, new)
        assert new.n_heads == 3 * new.n_kv_heads
    assert shape_for_ratio(cfg, shape, 0.2).n_kv_heads == 2  # 1/3 attention + ~16% MLP beats 0% + 27%
    assert shape_for_ratio(cfg, shape, 0.05).n_kv_heads == 3
    assert shape_for_ratio(cfg, shape, 1.0) == LayerShape(0, 0, 0)
    assert shape_for_ratio(cfg, shape, 0.0) == shape


@pytest.mark.parametrize("method", METHODS)
def test_importance_methods_rank_silenced_structures_lowest(method):
    model, x = tiny_model(), tokens()
    with torch.no_grad():  # group 0 of layer 1 and channel 7 of layer 3 contribute nothing
        model.layers[1].self_attn.o_proj.weight[:, :48] = 0
        model.layers[3].mlp.down_proj.weight[:, 7] = 0
    before = {k: v.clone() for k, v in model.state_dict().items()}
    scores = compute_importance(model, method, x, seed=1)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert all(p.grad is None for p in model.parameters())
    for layer in scores.layers:
        assert layer.groups.shape == (2,) and layer.channels.shape == (96,)
    if method != "random":
        assert float(scores.layers[1].groups[0]) < float(scores.layers[1].groups[1])
        assert int(scores.layers[3].channels.argmin()) == 7
    if method in ("taylor", "activation", "fluctuation"):
        assert float(scores.layers[1].groups[0]) == 0.0 and float(scores.layers[3].channels[7]) == 0.0
    ratios = uniform_ratios(model.config, 0.2, exempt_first=1, exempt_last=1)
    pruned = prune_model(model, ratios, scores)
    achieved = 1 - pruned.param_count() / model.param_count()
    assert abs(achieved - 0.2) < 0.01
    assert pruned(x).isfinite().all()


@pytest.mark.parametrize("method", BASELINES)
@pytest.mark.parametrize("target", [0.1, 0.25])
def test_baselines_meet_the_global_target(method, target):
    model, x = tiny_model(n_layers=8), tokens()
    ratios = baseline_ratios(method, model, target, x, seed=2)
    assert len(ratios) == 8 and all(0 <= r <= 1 for r in ratios)
    achieved = removed_fraction(model.config, ratios)
    layer_share = model.config.layer_params(model.config.layers[0]) / model.config.param_count()
    tol = layer_share / 2 + 1e-9 if method == "shortgpt" else 0.005
    assert abs(achieved - target) <= tol, (method, achieved)
    pruned = prune_model(model, ratios, "magnitude")
    assert pruned.param_count() == model.param_count() - params_removed(model.config, ratios)
    if method == "uniform":
        assert ratios[:3] == [0.0] * 3 and ratios[-1] == 0.0 and len(set(ratios[3:-1])) == 1
    if method == "shortgpt":
        assert set(ratios) <= {0.0, 1.0}


def test_random_ratios_are_seeded_and_differ_between_seeds():
    cfg = tiny_config(n_layers=8)
    assert random_ratios(cfg, 0.2, seed=5) == random_ratios(cfg, 0.2, seed=5)
    assert random_ratios(cfg, 0.2, seed=5) != random_ratios(cfg, 0.2, seed=6)


def test_shortgpt_removes_an_identity_layer_first():
    model, x = tiny_model(n_layers=8), tokens()
    with torch.no_grad():
        model.layers[5].self_attn.o_proj.weight.zero_()
        model.layers[5].mlp.down_proj.weight.zero_()
    influence = block_influence(model, x)
    assert influence[5] == pytest.approx(0.0, abs=1e-6)
    assert min(range(8), key=lambda i: influence[i]) == 5
    share = model.config.layer_params(model.config.layers[0]) / model.config.param_count()
    ratios = shortgpt_ratios(model.config, influence, share)
    assert ratios == [0, 0, 0, 0, 0, 1.0, 0, 0]
    pruned = prune_model(model, ratios, "magnitude")
    torch.testing.assert_close(pruned(x), model(x), rtol=1e-4, atol=1e-4)
    filled = shortgpt_ratios(model.config, influence, 1.5 * share, fill=True)
    assert filled[5] == 1.0 and sum(0 < r < 1 for r in filled) == 1
    assert abs(removed_fraction(model.config, filled) - 1.5 * share) < 0.005


@pytest.mark.parametrize("bad", [[0.1] * 5, [0.1] * 5 + [1.5], [0.1] * 5 + [-0.1]])
def test_bad_ratios_are_rejected(bad):
    with pytest.raises(CloneError, match="ratio"):
        prune_model(tiny_model(), bad, "magnitude")


def test_bad_method_and_target_are_rejected():
    model = tiny_model()
    with pytest.raises(CloneError, match="unknown importance method 'l3'"):
        prune_model(model, [0.2] * 6, "l3")
    with pytest.raises(CloneError, match="needs calibration"):
        prune_model(model, [0.2] * 6, "taylor")
    with pytest.raises(CloneError, match="outside"):
        uniform_ratios(model.config, 1.0)
    with pytest.raises(CloneError, match="unknown baseline method"):
        baseline_ratios("slicegpt", model, 0.2)


def test_smollm2_taylor_pruning_beats_random_pruning(smollm2):
    """20% of SmolLM2 removed (uniform ratios): Taylor importance keeps perplexity far below random."""
    from clone.data.calibration import calibration_samples
    from clone.eval.perplexity import perplexity_of_tokens

    model, tok = smollm2.model, smollm2.tokenizer
    calib = calibration_samples(tok, "shakespeare", "train", n_samples=8, seq_len=64, seed=0)
    held = calibration_samples(tok, "shakespeare", "validation", n_samples=4, seq_len=128, seed=1)
    ratios = uniform_ratios(model.config, 0.2)
    assert abs(removed_fraction(model.config, ratios) - 0.2) < 0.002
    taylor = prune_model(model, ratios, "taylor", calib)
    assert taylor.param_count() < 0.801 * model.param_count()
    ppl = {name: perplexity_of_tokens(m, held, progress=False).ppl
           for name, m in (("dense", model), ("taylor", taylor),
                           ("random", prune_model(model, ratios, "random", seed=0)))}
    assert ppl["dense"] < ppl["taylor"] < ppl["random"] / 2, ppl


def test_flap_config_meets_the_target_and_standardises_per_layer():
    from clone.prune import compute_importance, flap_config, fluctuation_channels, prune_to_config

    model, x = tiny_model(n_layers=8), tokens()
    channels = fluctuation_channels(model, x)
    assert channels[0]["attn"].shape == (96,) and channels[0]["ffn"].shape == (96,)
    cfg = flap_config(model.config, channels, 0.15)
    achieved = 1 - cfg.param_count() / model.config.param_count()
    group_share = 8192 / model.config.param_count()
    assert 0.15 <= achieved <= 0.15 + group_share
    pruned = prune_to_config(model, cfg, compute_importance(model, "fluctuation", x))
    assert pruned.config.layers == cfg.layers and pruned(x).isfinite().all()
    # scores are standardised within each layer: scaling one layer's MLP output changes nothing
    scaled = [dict(c) for c in channels]
    scaled[4]["ffn"] = scaled[4]["ffn"] * 1e-4
    assert flap_config(model.config, scaled, 0.15).layers == cfg.layers


def test_ffn_multiple_keeps_pruned_widths_quantizable():
    from clone.quant import quantize_model

    model, x = tiny_model(n_layers=8), tokens()
    with pytest.raises(CloneError, match="does not divide"):
        quantize_model(prune_model(model, [0.0] * 3 + [0.3] * 4 + [0.0], "magnitude"), 4, 16)  # FFN 84
    ratios = uniform_ratios(model.config, 0.2, ffn_multiple=16)
    pruned = prune_model(model, ratios, "magnitude", ffn_multiple=16)
    assert all(s.ffn_dim % 16 == 0 for s in pruned.config.layers)
    assert abs(removed_fraction(model.config, ratios, ffn_multiple=16) - 0.2) < 0.02
    assert pruned.param_count() == model.param_count() - params_removed(model.config, ratios, ffn_multiple=16)
    quantize_model(pruned, 4, 16)  # every pruned width (KV group = 48 columns) splits into whole groups
    assert pruned(x).isfinite().all()


def test_layerwise_candidate_perplexity_and_inplace_pruning_match_prune_model():
    """pruned_perplexity (the search's evaluator) and prune_model_inplace (clone optimize) compute
    exactly what prune_model's new model computes, for both attention/MLP splits."""
    import copy

    from clone.eval.perplexity import perplexity_of_tokens
    from clone.prune import prune_model_inplace, pruned_perplexity
    from clone.prune.pruner import split_config

    model = tiny_model(qkv_bias=True)
    stream = tokens(1, 700).reshape(-1)
    scores = compute_importance(model, "taylor", tokens())
    ratios = [0.3, 1.0, 0.0, 0.5, 0.2, 0.6]
    for split in ("balanced", "importance"):
        pruned = prune_model(model, ratios, importance=scores, split=split)
        want = perplexity_of_tokens(pruned, stream, seq_len=64, progress=False)
        got = pruned_perplexity(model, split_config(model, ratios, scores, split), scores, stream, 64, chunk_tokens=150)
        assert got.ppl == pytest.approx(want.ppl, rel=1e-5) and got.protocol() == want.protocol()
        inplace = prune_model_inplace(copy.deepcopy(model), ratios, scores, split=split)
        with torch.no_grad():
            assert inplace.config == pruned.config and torch.equal(inplace(tokens()), pruned(tokens()))
    assert model.config == tiny_model(qkv_bias=True).config  # the base is untouched


def test_importance_split_removes_the_cheapest_units_per_parameter_first():
    from clone.prune import Importance, LayerScores
    from clone.prune.shapes import group_params, shape_by_importance

    cfg = tiny_model().config
    shape = cfg.layers[0]  # 6 heads in 2 KV groups, 96 channels
    strong_attn = LayerScores(torch.tensor([1e6, 1e6], dtype=torch.float64), torch.rand(96, dtype=torch.float64))
    got = shape_by_importance(cfg, shape, 0.3, strong_attn)
    assert got.n_kv_heads == 2 and got.ffn_dim < 96  # only channels go
    weak_attn = LayerScores(torch.tensor([1e-9, 5.0], dtype=torch.float64), torch.ones(96, dtype=torch.float64))
    got = shape_by_importance(cfg, shape, 0.3, weak_attn)
    assert got.n_kv_heads == 1 and got.n_heads == 3  # the nearly dead group goes first
    for scores in (strong_attn, weak_attn):
        got = shape_by_importance(cfg, shape, 0.3, scores)
        removed = cfg.layer_params(shape) - cfg.layer_params(got)
        assert abs(removed - 0.3 * cfg.layer_params(shape)) <= 1.5 * 3 * cfg.dim
    assert group_params(cfg, shape) == cfg.dim * cfg.head_dim * (2 * 3 + 2)
    imp = Importance("x", [strong_attn] * cfg.n_layers)
    assert pruned_config(cfg, [0.3] * cfg.n_layers, importance=imp).layers[0] == shape_by_importance(cfg, shape, 0.3, strong_attn)
    from clone.prune.pruner import split_config

    with pytest.raises(CloneError, match="needs importance"):
        split_config(tiny_model(), [0.3] * 6, None, "importance")
    with pytest.raises(CloneError, match="unknown split"):
        split_config(tiny_model(), [0.3] * 6, imp, "even")
