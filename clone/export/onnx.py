"""ONNX export of a (dense, pruned or quantized) decoder with the KV cache as graph inputs/outputs.

The graph is written node by node from the model's weights rather than traced, so every layer keeps
its own shape (heads, KV heads, FFN width; layers without attention have no cache tensors) and the
decode step runs through onnxruntime's fused CPU kernels: one packed QKV MatMul feeding
com.microsoft GroupQueryAttention (rotary embedding and the causal mask inside the kernel, cache in
BNSH layout), SkipSimplifiedLayerNormalization for residual + RMSNorm, one fused gate-up MatMul.
Quantized linear layers become com.microsoft MatMulNBits with the model's own codes, scales and zero
points; a float model can instead be quantized by onnxruntime's MatMulNBitsQuantizer.

Interface of the exported graph (batch, sequence and past length dynamic):
  inputs  input_ids int64 [batch, sequence]
          attention_mask int64 [batch, past + sequence] (all ones; its length is the total length)
          past_key_values.{i}.key / .value float [batch, kv_heads_i, past, head_dim]  (attention layers)
  outputs logits float [batch, sequence or 1, vocab]
          present.{i}.key / .value float [batch, kv_heads_i, past + sequence, head_dim]
Prefill passes an empty past (past = 0); decode passes the previous presents. A runtime may instead
bind one preallocated buffer [batch, kv_heads_i, max_len, head_dim] as both past and present
(onnxruntime's shared-buffer mode), which updates the cache in place with no copy per step.
Rows of a batch must have equal lengths (no padding).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Sequence

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from clone.errors import CloneError
from clone.export.packing import (NBitsTensors, QuantizedWeight, block_size_for, concat_nbits, pack_nbits,
                                  quantized_weight_of, unpack_nbits)
from clone.model.llama import Transformer, rope_inv_freq

DEFAULT_OPSET = 21
MS_DOMAIN = "com.microsoft"
EXTERNAL_DATA_THRESHOLD = 1_800_000_000  # protobuf refuses messages over 2 GiB
META_MATMULS = "clone.matmul_outputs"  # MatMul output name -> [[module path, out features], ...]

# Tolerances of verify_onnx (max |logit difference|): fp32 graphs against the PyTorch model, and
# graphs with MatMulNBits against PyTorch running the same dequantized weights. Accuracy level 4
# (int8 activations inside MatMulNBits) is a further approximation and gets its own bound.
TOLERANCE_FP32 = 1e-3
TOLERANCE_NBITS = 2e-3
TOLERANCE_NBITS_INT8_ACT = 0.5


def kv_input_names(layer: int) -> tuple[str, str]:
    return f"past_key_values.{layer}.key", f"past_key_values.{layer}.value"


def kv_output_names(layer: int) -> tuple[str, str]:
    return f"present.{layer}.key", f"present.{layer}.value"


@dataclass
class ExportInfo:
    path: Path
    n_matmul_nbits: int
    n_matmul_float: int
    bytes_on_disk: int
    attention_layers: list[int] = field(default_factory=list)


@dataclass
class ExternalData:
    """Initializers written straight to `<model>.data` as the graph is built, so the exported
    weights never sit in memory next to the model's own (protobuf would hold a full copy, and
    onnx.save_model's conversion to external data starts from that copy). Offsets are page-aligned
    so onnxruntime can map the file instead of reading it."""

    file: Any  # binary file object, opened for writing
    location: str  # file name relative to the .onnx file
    min_bytes: int = 1024  # smaller tensors stay inside the protobuf
    align: int = 4096
    offset: int = 0

    def tensor(self, array: np.ndarray, name: str) -> onnx.TensorProto:
        if array.nbytes < self.min_bytes:
            return numpy_helper.from_array(np.ascontiguousarray(array), name)
        pad = -self.offset % self.align
        self.file.write(b"\0" * pad)
        self.offset += pad
        self.file.write(np.ascontiguousarray(array).data)
        proto = onnx.TensorProto(name=name, dims=list(array.shape),
                                 data_type=helper.np_dtype_to_tensor_dtype(array.dtype))
        proto.data_location = onnx.TensorProto.EXTERNAL
        for key, value in (("location", self.location), ("offset", str(self.offset)), ("length", str(array.nbytes))):
            entry = proto.external_data.add()
            entry.key, entry.value = key, value
        self.offset += array.nbytes
        return proto


class _Graph:
    """Collects nodes and initializers with unique names (initializers go to `sink` if given)."""

    def __init__(self, sink: ExternalData | None = None) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.names: set[str] = set()
        self.matmul_map: dict[str, list[tuple[str, int]]] = {}
        self.n_nbits = 0
        self.n_float = 0
        self.sink = sink

    def init(self, name: str, array: np.ndarray) -> str:
        assert name not in self.names, name
        self.names.add(name)
        if self.sink is not None:
            self.inits.append(self.sink.tensor(array, name))
        else:
            self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def const_i64(self, name: str, values: Sequence[int]) -> str:
        if name in self.names:
            return name
        return self.init(name, np.asarray(values, dtype=np.int64))

    def node(self, op: str, inputs: Sequence[str], outputs: Sequence[str] | int, name: str,
             domain: str = "", **attrs: Any) -> list[str]:
        if isinstance(outputs, int):
            outputs = [f"{name}/out{i}" if outputs > 1 else f"{name}/out" for i in range(outputs)]
        self.nodes.append(helper.make_node(op, list(inputs), list(outputs), name=name, domain=domain or None, **attrs))
        return list(outputs)


def _float_weight(module: nn.Module) -> tuple[np.ndarray, np.ndarray | None]:
    """[N, K] float weight and bias of a Linear (or of anything with a dequantized .weight)."""
    w = module.weight.detach().float().cpu().numpy()
    b = getattr(module, "bias", None)
    return w, (b.detach().float().cpu().numpy() if b is not None else None)


def _linear(g: _Graph, x: str, modules: list[tuple[str, nn.Module]], name: str, accuracy_level: int,
            opset: int) -> str | None:
    """One MatMul (or MatMulNBits) computing the concatenated outputs of `modules`; None if the
    modules cannot share one node (mixed float / quantized layouts)."""
    quant = [quantized_weight_of(m) for _, m in modules]
    out = f"{name}/out"
    outs_map = [(path, int(q.shape[0]) if q is not None else int(m.weight.shape[0]))
                for (path, m), q in zip(modules, quant)]
    if all(q is not None for q in quant):
        packed = concat_nbits([pack_nbits(q) for q in quant]) if all(
            block_size_for(min(q.group_size, q.shape[1]), q.shape[1]) for q in quant) else None
        if packed is None:
            if len(modules) > 1:
                return None
            return _dequantize_linear(g, x, modules[0][0], quant[0], name, opset)
        inputs = [x, g.init(f"{name}.B", packed.B), g.init(f"{name}.scales", packed.scales)]
        inputs.append(g.init(f"{name}.zero_points", packed.zero_points) if packed.zero_points is not None else "")
        if packed.bias is not None:
            inputs += ["", g.init(f"{name}.bias", packed.bias)]
        while inputs and inputs[-1] == "":
            inputs.pop()
        g.node("MatMulNBits", inputs, [out], f"{name}/MatMulNBits", MS_DOMAIN, K=packed.K, N=packed.N,
               bits=packed.bits, block_size=packed.block_size, accuracy_level=accuracy_level)
        g.n_nbits += 1
        return out
    if any(q is not None for q in quant):
        return None
    ws, bs = zip(*(_float_weight(m) for _, m in modules))
    w = np.concatenate(ws, axis=0).T  # [K, N]
    mm_out = f"{name}/matmul" if bs[0] is not None else out
    g.node("MatMul", [x, g.init(f"{name}.weight", w)], [mm_out], f"{name}/MatMul")
    g.matmul_map[mm_out] = outs_map
    g.n_float += 1
    if bs[0] is not None:
        g.node("Add", [mm_out, g.init(f"{name}.bias", np.concatenate(bs))], [out], f"{name}/Add")
    return out


def _dequantize_linear(g: _Graph, x: str, path: str, q: QuantizedWeight, name: str, opset: int) -> str:
    """Quantized weights MatMulNBits cannot express (group size not a multiple of 16): blocked
    DequantizeLinear (opset 21) feeding a float MatMul. Exact, but not faster than fp32."""
    if opset < 21:
        raise CloneError(f"{path}: group size {q.group_size} needs opset >= 21 (blocked DequantizeLinear), got {opset}")
    N, K = q.shape
    zeros = q.zeros if q.zeros is not None else np.full_like(q.scales, 2 ** (q.bits - 1))
    if not q.integer_zeros():
        w = q.dequantize().T
        g.node("MatMul", [x, g.init(f"{name}.weight", np.ascontiguousarray(w))], [f"{name}/mm"], f"{name}/MatMul")
    else:
        codes = g.init(f"{name}.codes", np.ascontiguousarray(q.codes.T))  # [K, N] uint8
        scales = g.init(f"{name}.scales", np.ascontiguousarray(q.scales.T.astype(np.float32)))
        zps = g.init(f"{name}.zero_points", np.ascontiguousarray(zeros.T.astype(np.uint8)))
        g.node("DequantizeLinear", [codes, scales, zps], [f"{name}/w"], f"{name}/DequantizeLinear",
               axis=0, block_size=q.group_size)
        g.node("MatMul", [x, f"{name}/w"], [f"{name}/mm"], f"{name}/MatMul")
    out = f"{name}/mm"
    if q.bias is not None:
        g.node("Add", [out, g.init(f"{name}.bias", q.bias)], [f"{name}/out"], f"{name}/Add")
        out = f"{name}/out"
    return out


def _rms(g: _Graph, x: str, pending: str | None, weight: torch.Tensor, eps: float, name: str) -> tuple[str, str]:
    """RMSNorm of x + pending; returns (normed, new residual stream)."""
    w = g.init(f"{name}.weight", weight.detach().float().cpu().numpy())
    if pending is None:
        (y,) = g.node("SimplifiedLayerNormalization", [x, w], [f"{name}/out"], f"{name}/Norm", axis=-1,
                      epsilon=float(eps), stash_type=1)
        return y, x
    y, _, _, s = g.node("SkipSimplifiedLayerNormalization", [pending, x, w],
                        [f"{name}/out", "", "", f"{name}/residual"], f"{name}/SkipNorm", MS_DOMAIN,
                        epsilon=float(eps))
    return y, s


def _attention(g: _Graph, model: Transformer, i: int, h: str, accuracy_level: int, opset: int) -> str:
    attn = model.layers[i].self_attn
    p = f"layers.{i}.self_attn"
    mods = [(f"{p}.q_proj", attn.q_proj), (f"{p}.k_proj", attn.k_proj), (f"{p}.v_proj", attn.v_proj)]
    qkv = _linear(g, h, mods, f"{p}.qkv_proj", accuracy_level, opset)
    if qkv is not None:
        qkv_inputs = [qkv, "", ""]
    else:
        qkv_inputs = [_linear(g, h, [m], m[0], accuracy_level, opset) for m in mods]  # type: ignore[list-item]
    past_k, past_v = kv_input_names(i)
    present_k, present_v = kv_output_names(i)
    out, _, _ = g.node(
        "GroupQueryAttention",
        qkv_inputs + [past_k, past_v, "seqlens_k", "total_sequence_length", "rope_cos", "rope_sin"],
        [f"{p}/attn", present_k, present_v], f"{p}/GroupQueryAttention", MS_DOMAIN,
        num_heads=attn.n_heads, kv_num_heads=attn.n_kv_heads, do_rotary=1, rotary_interleaved=0,
        scale=float(1.0 / np.sqrt(attn.head_dim)))
    o = _linear(g, out, [(f"{p}.o_proj", attn.o_proj)], f"{p}.o_proj", accuracy_level, opset)
    assert o is not None
    return o


def _mlp(g: _Graph, model: Transformer, i: int, h: str, accuracy_level: int, opset: int) -> str:
    mlp = model.layers[i].mlp
    p = f"layers.{i}.mlp"
    F = model.config.layers[i].ffn_dim
    gu = _linear(g, h, [(f"{p}.gate_proj", mlp.gate_proj), (f"{p}.up_proj", mlp.up_proj)], f"{p}.gate_up_proj",
                 accuracy_level, opset)
    if gu is not None:
        split = g.const_i64(f"split_{F}_{F}", [F, F])
        gate, up = g.node("Split", [gu, split], [f"{p}/gate", f"{p}/up"], f"{p}/Split", axis=-1)
    else:
        gate = _linear(g, h, [(f"{p}.gate_proj", mlp.gate_proj)], f"{p}.gate_proj", accuracy_level, opset)
        up = _linear(g, h, [(f"{p}.up_proj", mlp.up_proj)], f"{p}.up_proj", accuracy_level, opset)
    (sig,) = g.node("Sigmoid", [gate], 1, f"{p}/Sigmoid")
    (silu,) = g.node("Mul", [gate, sig], 1, f"{p}/Silu")
    (act,) = g.node("Mul", [silu, up], 1, f"{p}/Gate")
    down = _linear(g, act, [(f"{p}.down_proj", mlp.down_proj)], f"{p}.down_proj", accuracy_level, opset)
    assert down is not None
    return down


def _rope_tables(model: Transformer, max_positions: int) -> tuple[np.ndarray, np.ndarray]:
    """cos/sin [max_positions, head_dim / 2], computed as the PyTorch model computes them."""
    inv = rope_inv_freq(model.config)
    freqs = torch.outer(torch.arange(max_positions, dtype=torch.float32), inv)
    return freqs.cos().numpy(), freqs.sin().numpy()


def build_graph(model: Transformer, *, opset: int = DEFAULT_OPSET, last_logits_only: bool = False,
                accuracy_level: int = 0, max_positions: int | None = None,
                sink: ExternalData | None = None) -> onnx.ModelProto:
    """The ONNX model for `model` (weights inside, or written to `sink`); see the module docstring
    for its interface."""
    cfg = model.config
    max_positions = int(max_positions or cfg.max_seq_len)
    g = _Graph(sink)
    batch, seq, total, past = "batch", "sequence", "total_sequence", "past_sequence"
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [batch, seq]),
              helper.make_tensor_value_info("attention_mask", TensorProto.INT64, [batch, total])]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 1 if last_logits_only else seq, cfg.vocab_size])]
    attn_layers = [i for i, s in enumerate(cfg.layers) if s.n_heads]
    for i in attn_layers:
        kvh = cfg.layers[i].n_kv_heads
        for n in kv_input_names(i):
            inputs.append(helper.make_tensor_value_info(n, TensorProto.FLOAT, [batch, kvh, past, cfg.head_dim]))
        for n in kv_output_names(i):
            outputs.append(helper.make_tensor_value_info(n, TensorProto.FLOAT, [batch, kvh, total, cfg.head_dim]))

    if attn_layers:
        # Lengths for GroupQueryAttention: seqlens_k = total - 1 per row, total_sequence_length scalar.
        (mask_sum,) = g.node("ReduceSum", ["attention_mask", g.const_i64("axes_1", [1])], 1, "mask/ReduceSum", keepdims=0)
        (mask_m1,) = g.node("Sub", [mask_sum, g.const_i64("one", [1])], 1, "mask/Sub")
        g.node("Cast", [mask_m1], ["seqlens_k"], "mask/CastSeqlens", to=TensorProto.INT32)
        (shape,) = g.node("Shape", ["attention_mask"], 1, "mask/Shape", start=1, end=2)
        (total_1,) = g.node("Cast", [shape], 1, "mask/CastTotal", to=TensorProto.INT32)
        g.node("Squeeze", [total_1, g.const_i64("axes_0", [0])], ["total_sequence_length"], "mask/Squeeze")
        cos, sin = _rope_tables(model, max_positions)
        g.init("rope_cos", cos)
        g.init("rope_sin", sin)

    emb = model.embed_tokens.weight.detach().float().cpu().numpy()
    (x,) = g.node("Gather", [g.init("embed_tokens.weight", emb), "input_ids"], ["embeddings"], "embed_tokens/Gather")
    pending: str | None = None
    for i, layer in enumerate(model.layers):
        if layer.self_attn is not None:
            h, x = _rms(g, x, pending, layer.input_layernorm.weight, layer.input_layernorm.eps, f"layers.{i}.input_layernorm")
            pending = _attention(g, model, i, h, accuracy_level, opset)
        if layer.mlp is not None:
            h, x = _rms(g, x, pending, layer.post_attention_layernorm.weight, layer.post_attention_layernorm.eps,
                        f"layers.{i}.post_attention_layernorm")
            pending = _mlp(g, model, i, h, accuracy_level, opset)
    if last_logits_only:
        starts, ends, axes = g.const_i64("minus_one", [-1]), g.const_i64("int_max", [2**62]), g.const_i64("axes_1", [1])
        (x,) = g.node("Slice", [x, starts, ends, axes], 1, "last/SliceResidual")
        if pending is not None:
            (pending,) = g.node("Slice", [pending, starts, ends, axes], 1, "last/SlicePending")
    h, _ = _rms(g, x, pending, model.norm.weight, model.norm.eps, "norm")
    logits = _linear(g, h, [("lm_head", model.lm_head)], "lm_head", accuracy_level, opset)
    assert logits is not None
    g.node("Identity", [logits], ["logits"], "logits/Identity")

    graph = helper.make_graph(g.nodes, "clone_decoder", inputs, outputs, g.inits)
    opsets = [helper.make_opsetid("", opset), helper.make_opsetid(MS_DOMAIN, 1)]
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="clone", ir_version=10)
    meta = {
        "clone.config": json.dumps(cfg.to_dict()),
        "clone.last_logits_only": str(int(last_logits_only)),
        "clone.max_positions": str(max_positions),
        "clone.kv_layout": "BNSH",
        META_MATMULS: json.dumps(g.matmul_map),
    }
    helper.set_model_props(proto, meta)
    proto.doc_string = f"matmul_nbits={g.n_nbits} matmul_float={g.n_float}"
    return proto


def quantize_float_matmuls(proto: onnx.ModelProto, *, bits: int = 4, block_size: int = 128, symmetric: bool = False,
                           accuracy_level: int = 0, exclude_lm_head: bool = False) -> onnx.ModelProto:
    """Route (b): onnxruntime's RTN MatMulNBitsQuantizer over every float MatMul with a constant
    weight. The quantizer keeps output names, so the matmul map still finds the modules."""
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    if block_size < 16 or block_size & (block_size - 1):
        raise CloneError(f"block size {block_size} must be a power of two >= 16 for MatMulNBits")
    exclude = ["lm_head/MatMul"] if exclude_lm_head else []
    config = DefaultWeightOnlyQuantConfig(block_size=block_size, is_symmetric=symmetric,
                                          accuracy_level=accuracy_level, bits=bits)
    q = MatMulNBitsQuantizer(proto, bits=bits, block_size=block_size, is_symmetric=symmetric,
                             accuracy_level=accuracy_level, nodes_to_exclude=exclude, algo_config=config)
    q.process()
    out = q.model.model
    return out


def _total_bytes(proto: onnx.ModelProto) -> int:
    return sum(len(t.raw_data) for t in proto.graph.initializer)


def save_model(proto: onnx.ModelProto, path: str | os.PathLike, external_data: bool | None = None) -> Path:
    """Write `proto` to path atomically; weights go to path + '.data' when the 2 GiB protobuf limit
    requires it (or when external_data=True)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if external_data is None:
        external_data = _total_bytes(proto) > EXTERNAL_DATA_THRESHOLD
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    data_name = path.name + ".data"
    try:
        if external_data:
            onnx.save_model(proto, str(tmp / path.name), save_as_external_data=True, all_tensors_to_one_file=True,
                            location=data_name, size_threshold=1024)
            os.replace(tmp / data_name, path.parent / data_name)
        else:
            onnx.save_model(proto, str(tmp / path.name))
            if (path.parent / data_name).exists():
                (path.parent / data_name).unlink()
        os.replace(tmp / path.name, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def export_nbytes(model: Transformer) -> int:
    """About how many weight bytes the export holds: the model's tensors, plus a tied embedding's
    second (transposed) copy as the lm_head MatMul weight."""
    from clone.quant import model_nbytes

    tied = model.lm_head.weight is model.embed_tokens.weight
    return model_nbytes(model) + (model.embed_tokens.weight.numel() * 4 if tied else 0)


def _export_streaming(model: Transformer, path: Path, kw: dict[str, Any]) -> Path:
    """Build the graph with every initializer written to `<path>.data` as it is made, then save the
    small protobuf; both files appear atomically (renamed from a temporary directory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    data_name = path.name + ".data"
    try:
        with open(tmp / data_name, "wb") as f, torch.no_grad():
            proto = build_graph(model, sink=ExternalData(f, data_name), **kw)
        onnx.save_model(proto, str(tmp / path.name))
        os.replace(tmp / data_name, path.parent / data_name)
        os.replace(tmp / path.name, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def export_onnx(model: Transformer, path: str | os.PathLike, opset: int = DEFAULT_OPSET, *,
                last_logits_only: bool = False, bits: int | None = None, block_size: int = 128,
                symmetric: bool = False, accuracy_level: int = 0, quantize_lm_head: bool = True,
                max_positions: int | None = None, external_data: bool | None = None) -> ExportInfo:
    """Export `model` to `path` (written atomically; see the module docstring for the interface).

    Quantized linear layers of the model become MatMulNBits with their own codes and scales. With
    `bits` set, the remaining float MatMuls are quantized by onnxruntime's RTN MatMulNBitsQuantizer
    (block `block_size`), the route for a float model. `accuracy_level` is MatMulNBits' attribute:
    0 computes in fp32 from the exact dequantized weights, 4 quantizes activations to int8 blocks
    (faster, slightly different numbers)."""
    if opset < 17:
        raise CloneError(f"opset {opset} is too old (supported: 17 and later)")
    if bits is not None and bits not in (4, 8):
        raise CloneError(f"bits {bits} is not supported for ONNX export (supported: 4, 8)")
    kw = dict(opset=opset, last_logits_only=last_logits_only, accuracy_level=accuracy_level, max_positions=max_positions)
    if external_data is None:
        external_data = export_nbytes(model) > EXTERNAL_DATA_THRESHOLD
    if external_data and bits is None:  # the quantizer route below needs the weights in memory
        out = _export_streaming(model, Path(path), kw)
        proto = onnx.load(str(out), load_external_data=False)
    else:
        with torch.no_grad():
            proto = build_graph(model, **kw)
        if bits is not None:
            meta = {p.key: p.value for p in proto.metadata_props}
            proto = quantize_float_matmuls(proto, bits=bits, block_size=block_size, symmetric=symmetric,
                                           accuracy_level=accuracy_level, exclude_lm_head=not quantize_lm_head)
            del proto.metadata_props[:]
            helper.set_model_props(proto, meta)
        out = save_model(proto, path, external_data)
    ops = [n.op_type for n in proto.graph.node]
    size = out.stat().st_size + ((out.parent / (out.name + ".data")).stat().st_size
                                 if (out.parent / (out.name + ".data")).exists() else 0)
    return ExportInfo(out, ops.count("MatMulNBits"), ops.count("MatMul"), size,
                      [i for i, s in enumerate(model.config.layers) if s.n_heads])


# ----------------------------------------------------------------------------------------------
# Verification


def session_options(threads: int | None = None, prepack: bool = True) -> "Any":
    """prepack=False: MatMul weights are used as loaded instead of also being kept in MLAS's packed
    layout (a second copy of every float weight); slower, and enough for a few verification steps."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    if not prepack:
        so.add_session_config_entry("session.disable_prepacking", "1")
    so.intra_op_num_threads = int(threads or torch.get_num_threads())
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return so


def _reference_model(model: Transformer, proto: onnx.ModelProto, path: Path) -> Transformer:
    """The PyTorch model with float Linears replaced by the dequantized weights the ONNX file at
    `path` (graph `proto`, loaded without external data) holds for them (float MatMuls quantized by
    onnxruntime's quantizer); the model itself otherwise."""
    import copy

    meta = {p.key: p.value for p in proto.metadata_props}
    mapping: dict[str, list[list[Any]]] = json.loads(meta.get(META_MATMULS, "{}"))
    if not any(n.op_type == "MatMulNBits" and n.output[0] in mapping for n in proto.graph.node):
        return model  # no float MatMul was quantized by onnxruntime: the file holds the model's own weights
    onnx.load_external_data_for_model(proto, str(path.parent))
    inits = {t.name: t for t in proto.graph.initializer}
    replaced: dict[str, np.ndarray] = {}
    for node in proto.graph.node:
        if node.op_type != "MatMulNBits" or node.output[0] not in mapping:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        arr = [numpy_helper.to_array(inits[n]) if n else None for n in list(node.input[1:4]) + [""] * 3][:3]
        w = unpack_nbits(arr[0], arr[1], arr[2], attrs["bits"], attrs["block_size"], attrs["K"], attrs["N"])
        start = 0
        for module_path, n_out in mapping[node.output[0]]:
            replaced[module_path] = w[start:start + n_out]
            start += n_out
    if not replaced:
        return model
    ref = copy.deepcopy(model)
    with torch.no_grad():
        for module_path, w in replaced.items():
            mod = ref.get_submodule(module_path)
            if module_path == "lm_head" and ref.config.tie_embeddings:
                mod.weight = nn.Parameter(torch.from_numpy(w.copy()))  # untie: the embedding stays float
            else:
                mod.weight.copy_(torch.from_numpy(w))
    return ref


def _onnx_accuracy_level(proto: onnx.ModelProto) -> int:
    levels = [helper.get_attribute_value(a) for n in proto.graph.node if n.op_type == "MatMulNBits"
              for a in n.attribute if a.name == "accuracy_level"]
    return max(levels, default=0)


def tolerance_for(path: str | os.PathLike) -> float:
    """The verify_onnx tolerance that applies to an exported file."""
    proto = onnx.load(str(path), load_external_data=False)
    ops = {n.op_type for n in proto.graph.node}
    if "MatMulNBits" not in ops:
        return TOLERANCE_FP32
    return TOLERANCE_NBITS_INT8_ACT if _onnx_accuracy_level(proto) >= 4 else TOLERANCE_NBITS


def _reference_steps(ref: Transformer, ids: torch.Tensor, decode_steps: int,
                     last_only: bool) -> list[tuple[torch.Tensor, np.ndarray]]:
    """PyTorch's (input ids, logits) for a prefill of `ids` and greedy decode steps."""
    cache = ref.new_cache(1, ids.shape[1] + decode_steps + 1)
    steps, step_ids = [], ids
    for _ in range(decode_steps + 1):
        want = ref(step_ids, cache=cache, last_only=last_only).float().numpy()
        steps.append((step_ids, want))
        step_ids = torch.tensor([[int(want[0, -1].argmax())]])
    return steps


@torch.inference_mode()
def verify_onnx(model: Transformer, path: str | os.PathLike, tokens: Sequence[int] | torch.Tensor,
                decode_steps: int = 4, threads: int | None = None,
                release: Callable[[], ContextManager[Any]] | None = None) -> float:
    """Max |logits difference| between onnxruntime and PyTorch over a prefill of `tokens` and
    `decode_steps` greedy decode steps through the KV-cache inputs/outputs.

    The PyTorch side runs the same weights the file holds: a quantized model's own dequantized
    forward, or, for MatMuls quantized by onnxruntime's quantizer, the model with those weights
    dequantized back. PyTorch runs first; onnxruntime then runs inside `release()` if given (e.g.
    `clone.model.swap.weights_swapped_out`, so the two copies of a large model are never in memory
    together). Compare the result with `tolerance_for(path)`."""
    import onnxruntime as ort

    path = Path(path)
    ids = torch.as_tensor(tokens, dtype=torch.long).reshape(1, -1)
    proto = onnx.load(str(path), load_external_data=False)
    last_only = any(p.key == "clone.last_logits_only" and p.value == "1" for p in proto.metadata_props)
    ref = _reference_model(model, proto, path)
    del proto
    steps = _reference_steps(ref, ids, decode_steps, last_only)
    del ref
    cfg = model.config
    with release() if release else contextlib.nullcontext():
        # no prepacked copies of the MatMul weights (they would double the session's memory)
        sess = ort.InferenceSession(str(path), session_options(threads, prepack=False),
                                    providers=["CPUExecutionProvider"])
        feeds: dict[str, np.ndarray] = {}
        for i, s in enumerate(cfg.layers):
            if s.n_heads:
                for n in kv_input_names(i):
                    feeds[n] = np.zeros((1, s.n_kv_heads, 0, cfg.head_dim), np.float32)
        worst, total = 0.0, 0
        out_names = [o.name for o in sess.get_outputs()]
        for step_ids, want in steps:
            total += step_ids.shape[1]
            feeds["input_ids"] = step_ids.numpy()
            feeds["attention_mask"] = np.ones((1, total), np.int64)
            outs = dict(zip(out_names, sess.run(out_names, feeds)))
            got = outs["logits"]
            if got.shape != want.shape:
                raise CloneError(f"{path}: logits shape {got.shape} differs from PyTorch's {want.shape}")
            worst = max(worst, float(np.abs(got - want).max()))
            for i, s in enumerate(cfg.layers):
                if s.n_heads:
                    for src, dst in zip(kv_output_names(i), kv_input_names(i)):
                        feeds[dst] = outs[src]
        del sess
    return worst
