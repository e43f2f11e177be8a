"""ONNX Runtime backend over a graph written by clone.export.onnx.

The KV cache lives in one preallocated buffer per layer and tensor, [1, kv_heads, max_len,
head_dim], bound through IOBinding as both the past input and the present output: onnxruntime's
GroupQueryAttention then appends the new keys and values in place (shared-buffer mode), so a decode
step copies no cache. Input ids, the attention mask and the logits are bound to preallocated numpy
arrays as well. Layer hooks are not available: one session runs all layers without returning to
Python. A policy that must act between layers would need the graph split into per-layer sessions
(each layer's hidden state as an output), which costs a Python round trip and a copy per layer; here
policies act per token and at the prefill/decode boundary only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from clone.errors import CloneError
from clone.runtime.backends.base import LayerHook


def make_session_options(threads: int | None = None, spinning: bool | None = None) -> Any:
    """intra-op threads = torch's thread count unless given; all graph optimizations on."""
    import onnxruntime as ort
    import torch

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads or torch.get_num_threads())
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if spinning is not None:
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return so


class OrtBackend:
    name = "onnxruntime"
    supports_layer_hooks = False

    def __init__(self, path: str | os.PathLike, max_len: int = 512, threads: int | None = None,
                 providers: Sequence[str] | None = None, spinning: bool | None = None) -> None:
        import onnxruntime as ort

        path = Path(path)
        if not path.exists():
            raise CloneError(f"{path}: no such ONNX file")
        self.path = path
        self.session = ort.InferenceSession(str(path), make_session_options(threads, spinning),
                                            providers=list(providers or ["CPUExecutionProvider"]))
        meta = self.session.get_modelmeta().custom_metadata_map
        self.last_logits_only = meta.get("clone.last_logits_only", "0") == "1"
        self.max_positions = int(meta.get("clone.max_positions", "0")) or None
        inputs = {i.name: i for i in self.session.get_inputs()}
        if "input_ids" not in inputs or "attention_mask" not in inputs:
            raise CloneError(f"{path}: not a clone decoder export (needs input_ids and attention_mask inputs)")
        self.kv: list[tuple[str, str, int, int]] = []  # (input name, output name, kv heads, head_dim)
        for name, info in inputs.items():
            if name.startswith("past_key_values."):
                _, layer, kind = name.split(".")
                self.kv.append((name, f"present.{layer}.{kind}", int(info.shape[1]), int(info.shape[3])))
        cfg = meta.get("clone.config")
        self.n_layers = len(json.loads(cfg)["layers"]) if cfg else len(self.kv) // 2
        self.vocab_size = int(self.session.get_outputs()[0].shape[2])
        self.binding = self.session.io_binding()
        self.max_len = 0
        self._ids = np.zeros((1, 1), dtype=np.int64)
        self._logits = np.zeros((1, 1, self.vocab_size), dtype=np.float32)
        self._pos = 0
        self.reset(min(max_len, self.max_positions or max_len))

    def reset(self, max_len: int) -> None:
        import onnxruntime as ort

        if self.max_positions and max_len > self.max_positions:
            raise CloneError(f"sequence of {max_len} tokens exceeds the exported maximum {self.max_positions}")
        self._pos = 0
        if max_len <= self.max_len:
            return
        self.max_len = max_len
        self._mask = np.ones((1, max_len), dtype=np.int64)
        self._buffers = []
        for past, present, kvh, hd in self.kv:
            buf = ort.OrtValue.ortvalue_from_numpy(np.zeros((1, kvh, max_len, hd), dtype=np.float32))
            self._buffers.append(buf)
            self.binding.bind_ortvalue_input(past, buf)
            self.binding.bind_ortvalue_output(present, buf)
        self._bind_logits_buffer()

    def _bind_logits_buffer(self) -> None:
        self.binding.bind_output("logits", "cpu", 0, np.float32, list(self._logits.shape), self._logits.ctypes.data)

    def _run(self, ids: np.ndarray) -> None:
        total = self._pos + ids.shape[1]
        if total > self.max_len:
            raise CloneError(f"sequence of {total} tokens exceeds the KV cache length {self.max_len}")
        self.binding.bind_input("input_ids", "cpu", 0, np.int64, list(ids.shape), ids.ctypes.data)
        self.binding.bind_input("attention_mask", "cpu", 0, np.int64, [1, total], self._mask.ctypes.data)
        self.session.run_with_iobinding(self.binding)
        self._pos = total

    def prefill(self, tokens: Sequence[int]) -> np.ndarray:
        self._pos = 0
        ids = np.ascontiguousarray(np.asarray(tokens, dtype=np.int64).reshape(1, -1))
        if self.last_logits_only or ids.shape[1] == 1:
            self._run(ids)
            return self._logits[0, -1]
        self.binding.bind_output("logits", "cpu")  # all positions: let onnxruntime allocate
        try:
            self._run(ids)
            logits = self.binding.get_outputs()[0].numpy()
        finally:
            self._bind_logits_buffer()
        return logits[0, -1]

    def decode(self, token: int) -> np.ndarray:
        self._ids[0, 0] = token
        self._run(self._ids)
        return self._logits[0, -1]

    def set_layer_hook(self, hook: LayerHook | None) -> None:
        if hook is not None:
            raise CloneError("the onnxruntime backend has no layer boundaries (one session runs every layer): "
                             "use per-token hooks, or the PyTorch backend for layer hooks")

    def close(self) -> None:
        self.binding.clear_binding_inputs()
        self.binding.clear_binding_outputs()
