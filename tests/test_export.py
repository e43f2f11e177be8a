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


def test_external_data_is_streamed_and_equals_the_inline_export(tmp_path):
    """With external data the weights are written to <model>.data while the graph is built (never a
    second in-memory copy); the file holds the same tensors and verifies the same."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    m = tiny()
    ext = export_onnx(m, tmp_path / "ext.onnx", external_data=True)
    inline = export_onnx(m, tmp_path / "inline.onnx", external_data=False)
    assert (tmp_path / "ext.onnx.data").exists() and not (tmp_path / "inline.onnx.data").exists()
    proto = onnx.load(str(ext.path), load_external_data=False)
    big = [t for t in proto.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert big and all(int({e.key: e.value for e in t.external_data}["offset"]) % 4096 == 0 for t in big)
    a = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(ext.path)).graph.initializer}
    b = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(inline.path)).graph.initializer}
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert verify_onnx(m, ext.path, list(range(1, 12)), decode_steps=3) < tolerance_for(ext.path)


def test_verify_with_weights_swapped_out(tmp_path):
    """While onnxruntime checks the file the model's weights wait on disk, and come back unchanged into
    the same tensors (tied embedding still tied), also for a quantized model and after an error."""
    from clone.model.swap import weights_swapped_out

    for m in (tiny(), quantize_model(tiny(), bits=4, group_size=16)):
        info = export_onnx(m, tmp_path / "m.onnx")
        ids = torch.tensor([[5, 9, 2, 7]])
        before = m(ids).detach().clone()
        params = {id(p) for p in m.parameters()}
        seen = []

        def release():
            seen.append(sum(t.numel() for t in [*m.parameters(), *m.buffers()]))
            return weights_swapped_out(m, tmp_path)

        diff = verify_onnx(m, info.path, [1, 2, 3, 4, 5], decode_steps=2, release=release)
        assert diff < tolerance_for(info.path)
        assert seen and seen[0] > 0
        assert {id(p) for p in m.parameters()} == params
        assert m.lm_head.weight is m.embed_tokens.weight
        assert torch.equal(m(ids), before)
        assert not list(tmp_path.glob(".swap-*"))
        try:
            with weights_swapped_out(m, tmp_path):
                assert all(p.numel() == 0 for p in m.parameters())
                raise RuntimeError("boom")
        except RuntimeError:
            pass
        assert torch.equal(m(ids), before)
