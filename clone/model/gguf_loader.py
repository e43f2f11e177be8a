"""Load a Llama-family GGUF file: dequantize every tensor and rebuild the tokenizer from metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from clone.errors import CloneError
from clone.model.config import ModelConfig
from clone.model.tokenizer import Tokenizer

LAYER_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_q.bias": "self_attn.q_proj.bias",
    "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.bias": "self_attn.v_proj.bias",
    "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
GLOBAL_NAMES = {"token_embd.weight": "embed_tokens.weight", "output_norm.weight": "norm.weight",
                "output.weight": "lm_head.weight"}


def _open(path: Path):
    from gguf import GGUFReader

    try:
        return GGUFReader(str(path))
    except Exception as exc:  # gguf raises ValueError/IndexError/struct errors on damaged files
        raise CloneError(f"{path}: not a readable GGUF file ({type(exc).__name__}: {str(exc)[:120]})") from None


def _fields(reader) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, field in reader.fields.items():
        try:
            out[key] = field.contents()
        except Exception:
            continue
    return out


def _scalar(fields: dict[str, Any], key: str, path: Path, default: Any = None) -> Any:
    value = fields.get(key, default)
    if value is None:
        raise CloneError(f"{path}: GGUF metadata key {key!r} is missing")
    if isinstance(value, list):  # per-layer arrays: take the first (uniform) value
        value = value[0]
    return value


def config_from_gguf(fields: dict[str, Any], path: Path) -> ModelConfig:
    arch = fields.get("general.architecture")
    if arch not in ("llama", "qwen2"):
        raise CloneError(f"{path}: GGUF architecture {arch!r} is not supported (supported: llama, qwen2)")
    p = arch + "."
    n_layers = int(_scalar(fields, p + "block_count", path))
    dim = int(_scalar(fields, p + "embedding_length", path))
    n_heads = int(_scalar(fields, p + "attention.head_count", path))
    n_kv = int(_scalar(fields, p + "attention.head_count_kv", path, n_heads))
    head_dim = int(fields.get(p + "attention.key_length", dim // n_heads))
    vocab = fields.get(p + "vocab_size") or len(fields.get("tokenizer.ggml.tokens", []))
    eos = fields.get("tokenizer.ggml.eos_token_id")
    return ModelConfig.uniform(
        arch=arch,
        n_layers=n_layers,
        n_heads=n_heads,
        n_kv_heads=n_kv,
        ffn_dim=int(_scalar(fields, p + "feed_forward_length", path)),
        vocab_size=int(vocab),
        dim=dim,
        head_dim=head_dim,
        rope_theta=float(fields.get(p + "rope.freq_base", 10000.0)),
        norm_eps=float(fields.get(p + "attention.layer_norm_rms_epsilon", 1e-5)),
        max_seq_len=int(fields.get(p + "context_length", 2048)),
        qkv_bias=arch == "qwen2",
        bos_token_id=fields.get("tokenizer.ggml.bos_token_id"),
        eos_token_id=eos,
        name=str(fields.get("general.name", path.stem)),
    )


def unpermute_rope_rows(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Undo llama.cpp's interleaved-RoPE row permutation so the half-split RoPE applies."""
    rows = w.shape[0]
    return w.reshape(n_heads, rows // n_heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _dequantize(tensor) -> np.ndarray:
    from gguf import quants

    data = quants.dequantize(tensor.data, tensor.tensor_type)
    shape = tuple(int(s) for s in reversed(tensor.shape))
    return np.array(data, dtype=np.float32).reshape(shape)


def load_gguf(path: Path, dtype: torch.dtype = torch.float32) -> tuple[ModelConfig, dict[str, torch.Tensor], Tokenizer]:
    reader = _open(path)
    fields = _fields(reader)
    config = config_from_gguf(fields, path)
    if "tokenizer.ggml.tokens" not in fields:
        raise CloneError(f"{path}: GGUF file has no tokenizer metadata")
    tokenizer = Tokenizer.from_gguf_fields(fields)
    state: dict[str, torch.Tensor] = {}
    heads = config.layers[0]
    try:
        for t in reader.tensors:
            name = _map_name(t.name, path)
            if name is None:
                continue
            w = _dequantize(t)
            if config.arch == "llama" and name.endswith(("q_proj.weight", "q_proj.bias")):
                w = unpermute_rope_rows(w, heads.n_heads)
            elif config.arch == "llama" and name.endswith(("k_proj.weight", "k_proj.bias")):
                w = unpermute_rope_rows(w, heads.n_kv_heads)
            state[name] = torch.from_numpy(w).to(dtype)
    except (ValueError, IndexError, TypeError) as exc:
        raise CloneError(f"{path}: damaged GGUF tensor data ({exc})") from None
    config.tie_embeddings = "lm_head.weight" not in state
    return config, state, tokenizer


def _map_name(name: str, path: Path) -> str | None:
    if name in GLOBAL_NAMES:
        return GLOBAL_NAMES[name]
    if name.startswith("blk."):
        _, idx, rest = name.split(".", 2)
        if rest in LAYER_NAMES:
            return f"layers.{idx}.{LAYER_NAMES[rest]}"
    if name.startswith("rope_") or name.endswith("rope_freqs.weight"):
        return None
    raise CloneError(f"{path}: unexpected GGUF tensor {name!r} for a Llama-family model")
