"""Shared helpers of the compression tests (pruning, quantization, LoRA): tiny random models."""

from __future__ import annotations

import pytest
import torch

from clone.model.config import ModelConfig
from clone.model.llama import Transformer


def tiny_config(n_layers: int = 6, n_heads: int = 6, n_kv_heads: int = 2, ffn_dim: int = 96, dim: int = 64,
                head_dim: int = 16, vocab: int = 128, tie: bool = True, qkv_bias: bool = False) -> ModelConfig:
    return ModelConfig.uniform(arch="qwen2" if qkv_bias else "llama", vocab_size=vocab, dim=dim, head_dim=head_dim,
                               n_layers=n_layers, n_heads=n_heads, n_kv_heads=n_kv_heads, ffn_dim=ffn_dim,
                               tie_embeddings=tie, qkv_bias=qkv_bias, max_seq_len=256, name="tiny")


def tiny_model(seed: int = 0, **kw) -> Transformer:
    torch.manual_seed(seed)
    model = Transformer(tiny_config(**kw)).eval()
    with torch.no_grad():  # non-trivial norms and biases, so wrong indexing shows up in the logits
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or name.endswith("layernorm.weight"):
                p.uniform_(0.5, 1.5)
            elif name.endswith(".bias"):
                p.normal_(0, 0.1)
    return model


def tokens(n: int = 8, length: int = 32, vocab: int = 128, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, vocab, (n, length), generator=torch.Generator().manual_seed(seed))


@pytest.fixture(autouse=True)
def single_thread_for_tiny_models(request):
    """Tiny models run fastest on one thread (intra-op threads only add overhead, and much more on a
    busy machine); tests on the embedded SmolLM2 keep torch's default."""
    if "smollm2" in request.fixturenames:
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)
