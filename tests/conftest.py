"""Shared fixtures: the embedded SmolLM2 loaded once per session, tiny random configs."""

from __future__ import annotations

import clone  # noqa: F401  (sets the OpenMP wait policy before torch loads)
import pytest
import torch

from clone.model.config import LayerShape, ModelConfig


@pytest.fixture(scope="session")
def smollm2():
    """The embedded SmolLM2-135M-Instruct (fp32), loaded once; tests must not modify it."""
    from clone.model.checkpoint import load_checkpoint

    return load_checkpoint("smollm2-135m")


def tiny_config(arch: str = "llama", layers: list[LayerShape] | None = None, **kw) -> ModelConfig:
    layers = layers or [LayerShape(4, 2, 48)] * 3
    base = dict(arch=arch, vocab_size=97, dim=32, head_dim=8, layers=layers, rope_theta=10000.0,
                norm_eps=1e-5, tie_embeddings=False, qkv_bias=arch == "qwen2", max_seq_len=128)
    base.update(kw)
    return ModelConfig(**base)


def tiny_model(config: ModelConfig | None = None, seed: int = 0):
    from clone.model.llama import Transformer

    torch.manual_seed(seed)
    model = Transformer(config or tiny_config())
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name:
                p.uniform_(0.8, 1.2)
            else:
                p.normal_(0, 0.2)
    return model.eval()
