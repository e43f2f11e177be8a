"""ONNX export: tiny models (per-layer shapes, a layer without attention, quantized) match PyTorch
through the KV-cache inputs/outputs."""

import copy

import torch

from clone.export.onnx import export_onnx, tolerance_for, verify_onnx
from clone.model.config import LayerShape, ModelConfig
from clone.model.llama import Transformer
from clone.quant import quantize_model


def tiny(arch: str = "llama") -> Transformer:
    torch.manual_seed(0)
    cfg = ModelConfig(arch=arch, vocab_size=97, dim=64, head_dim=16, tie_embeddings=True, max_seq_len=128,
                      qkv_bias=arch == "qwen2",
                      layers=[LayerShape(4, 2, 96), LayerShape(0, 0, 64), LayerShape(2, 1, 0), LayerShape(4, 4, 32)])
    m = Transformer(cfg).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.2)
    return m


def test_fp32_prefill_and_decode_match(tmp_path):
    for arch in ("llama", "qwen2"):
        m = tiny(arch)
        info = export_onnx(m, tmp_path / f"{arch}.onnx")
        assert info.attention_layers == [0, 2, 3]
        assert verify_onnx(m, info.path, list(range(1, 12)), decode_steps=4) < tolerance_for(info.path)


def test_quantized_model_uses_matmul_nbits_exactly(tmp_path):
    m = quantize_model(copy.deepcopy(tiny()), bits=4, group_size=16, method="rtn")
    info = export_onnx(m, tmp_path / "q4.onnx", last_logits_only=True)
    assert info.n_matmul_nbits == 12 and info.n_matmul_float == 1  # fused qkv/gate-up; float lm_head
    assert verify_onnx(m, info.path, list(range(1, 12)), decode_steps=4) < 2e-3


def test_smollm2_fp32_export_matches(tmp_path):
    from clone.model.checkpoint import load_checkpoint

    m = load_checkpoint("smollm2-135m").model
    info = export_onnx(m, tmp_path / "smollm2.onnx", last_logits_only=True)
    assert verify_onnx(m, info.path, list(range(100, 132)), decode_steps=2) < 1e-3
