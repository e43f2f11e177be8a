"""Model core: logit parity with transformers, per-layer shapes, KV cache, save/load round trip."""

from __future__ import annotations

import json

import pytest
import torch

from clone.model.checkpoint import load_checkpoint, save_checkpoint
from clone.model.config import LayerShape
from clone.model.generate import generate
from tests.conftest import tiny_config, tiny_model

transformers = pytest.importorskip("transformers")


def word_tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {f"w{i}": i for i in range(1, vocab_size)}
    vocab["[UNK]"] = 0
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return tok


def save_hf_random(tmp_path, arch: str, tie: bool, seed: int = 0):
    """A tiny random Hugging Face checkpoint (sharded safetensors for Llama) with a tokenizer."""
    torch.manual_seed(seed)
    common = dict(vocab_size=101, hidden_size=48, intermediate_size=80, num_hidden_layers=3,
                  num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=256,
                  tie_word_embeddings=tie, rms_norm_eps=1e-6)
    if arch == "llama":
        cfg = transformers.LlamaConfig(rope_theta=50000.0, **common)
        model = transformers.LlamaForCausalLM(cfg)
    else:
        cfg = transformers.Qwen2Config(rope_theta=1e6, **common)
        model = transformers.Qwen2ForCausalLM(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    model.eval()
    shard = "20KB" if arch == "llama" else "5GB"
    model.save_pretrained(tmp_path, safe_serialization=True, max_shard_size=shard)
    word_tokenizer(101).save(str(tmp_path / "tokenizer.json"))
    return model


@pytest.mark.parametrize("arch,tie", [("llama", False), ("llama", True), ("qwen2", False)])
def test_logit_parity_with_transformers_tiny(tmp_path, arch, tie):
    ref = save_hf_random(tmp_path, arch, tie)
    if arch == "llama":
        assert (tmp_path / "model.safetensors.index.json").exists(), "test must cover sharded checkpoints"
    ckpt = load_checkpoint(tmp_path)
    assert ckpt.kind == "hf" and ckpt.model.config.arch == arch
    tokens = torch.randint(0, 101, (2, 19), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = ckpt.model(tokens)
        theirs = ref(tokens).logits
    assert (ours - theirs).abs().max().item() < 1e-4


def test_logit_parity_smollm2_against_transformers_gguf_loader(smollm2):
    """transformers dequantizes and un-permutes the GGUF itself: an independent check of our loader."""
    from clone.model.checkpoint import builtin_path

    path = builtin_path("smollm2-135m")
    ref = transformers.AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32).eval()
    ids = smollm2.tokenizer.encode("To be, or not to be, that is the question: whether 'tis nobler in the mind")
    tokens = torch.tensor([ids])
    with torch.no_grad():
        diff = (smollm2.model(tokens) - ref(tokens).logits).abs().max().item()
    assert diff < 1e-3


def test_smollm2_greedy_answer(smollm2):
    ids = smollm2.tokenizer.encode("The capital of France is")
    res = generate(smollm2.model, smollm2.tokenizer, ids, max_new_tokens=4)
    assert res.text.strip().startswith("Paris")


def test_tokenizer_roundtrip_and_digits(smollm2):
    tok = smollm2.tokenizer
    text = "Hamlet, Prince of Denmark (1603): \u00e9t\u00e9 caf\u00e9 \u2014 'tis 42!"
    assert tok.decode(tok.encode(text)) == text
    # digits are split one per token before byte-level BPE
    assert len(tok.encode("2024")) == 4
    assert tok.encode("<|im_end|>") == [2]


def hetero_config():
    layers = [LayerShape(4, 2, 48), LayerShape(2, 1, 16), LayerShape(0, 0, 40), LayerShape(6, 2, 0)]
    return tiny_config(layers=layers, tie_embeddings=True)


def test_heterogeneous_layers_param_count_and_forward():
    model = tiny_model(hetero_config())
    assert model.param_count() == model.config.param_count()
    assert model.layers[2].self_attn is None and model.layers[3].mlp is None
    out = model(torch.randint(0, 97, (1, 7)))
    assert out.shape == (1, 7, 97) and torch.isfinite(out).all()


def test_save_load_roundtrip_bit_identical(tmp_path, smollm2):
    model = tiny_model(hetero_config())
    save_checkpoint(model, smollm2.tokenizer, tmp_path / "m", metadata={"note": "test"})
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert [l["ffn_dim"] for l in cfg["model"]["layers"]] == [48, 16, 40, 0]
    back = load_checkpoint(tmp_path / "m")
    assert back.kind == "clone" and back.metadata == {"note": "test"}
    tokens = torch.randint(0, 97, (2, 11))
    with torch.no_grad():
        assert torch.equal(model(tokens), back.model(tokens))
    assert back.model.lm_head.weight is back.model.embed_tokens.weight


@pytest.mark.parametrize("config", [tiny_config(), hetero_config(), tiny_config("qwen2")])
def test_kv_cache_matches_full_recompute(config):
    model = tiny_model(config)
    torch.manual_seed(3)
    prompt = torch.randint(0, 97, (1, 9))
    cache = model.new_cache(1, 32)
    seq = prompt
    with torch.no_grad():
        logits = model(prompt, cache=cache)
        assert torch.allclose(logits, model(prompt), atol=1e-5)
        for _ in range(8):
            nxt = logits[:, -1].argmax(-1, keepdim=True)
            seq = torch.cat([seq, nxt], 1)
            logits = model(nxt, cache=cache)
            full = model(seq)
            assert torch.allclose(logits[:, -1], full[:, -1], atol=1e-4)
        # a multi-token chunk after a cached prefix (chunked prefill) also matches
        chunk = torch.randint(0, 97, (1, 5))
        part = model(chunk, cache=cache)
        full = model(torch.cat([seq, chunk], 1))
        assert torch.allclose(part, full[:, -5:], atol=1e-4)


def test_kv_cache_greedy_tokens_equal_recompute_smollm2(smollm2):
    model, tok = smollm2.model, smollm2.tokenizer
    ids = tok.encode("Friends, Romans, countrymen, lend me your ears;")
    cached = generate(model, tok, ids, max_new_tokens=12, stop_at_eos=False).tokens
    seq = list(ids)
    with torch.no_grad():
        for _ in range(12):
            seq.append(int(model(torch.tensor([seq]))[0, -1].argmax()))
    assert cached == seq[len(ids):]
