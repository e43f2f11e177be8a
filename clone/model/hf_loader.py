"""Load a Hugging Face Llama-family directory: config.json, *.safetensors (one or sharded), tokenizer.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import torch

from clone.errors import CloneError
from clone.model.config import ModelConfig

HF_ARCHS = {"llama": "llama", "qwen2": "qwen2", "smollm": "llama", "smollm2": "llama"}


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CloneError(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise CloneError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno})") from None


def config_from_hf(cfg: dict[str, Any], path: Path) -> ModelConfig:
    model_type = cfg.get("model_type")
    arch = HF_ARCHS.get(model_type)
    if arch is None:
        raise CloneError(
            f"{path}: model_type {model_type!r} is not supported (supported: {', '.join(sorted(HF_ARCHS))})"
        )
    if cfg.get("mlp_bias") or (arch == "llama" and cfg.get("attention_bias")):
        raise CloneError(f"{path}: Llama checkpoints with attention_bias or mlp_bias are not supported")
    # transformers >= 5 writes rope settings under rope_parameters; older configs use top-level keys
    rope = dict(cfg.get("rope_parameters") or {})
    theta = cfg.get("rope_theta", rope.get("rope_theta", 10000.0))
    scaling = cfg.get("rope_scaling") or (rope if rope.get("rope_type", "default") != "default" else None)
    try:
        dim = int(cfg["hidden_size"])
        n_heads = int(cfg["num_attention_heads"])
        return ModelConfig.uniform(
            arch=arch,
            n_layers=int(cfg["num_hidden_layers"]),
            n_heads=n_heads,
            n_kv_heads=int(cfg.get("num_key_value_heads") or n_heads),
            ffn_dim=int(cfg["intermediate_size"]),
            vocab_size=int(cfg["vocab_size"]),
            dim=dim,
            head_dim=int(cfg.get("head_dim") or dim // n_heads),
            rope_theta=float(theta),
            norm_eps=float(cfg.get("rms_norm_eps", 1e-6)),
            tie_embeddings=bool(cfg.get("tie_word_embeddings", False)),
            qkv_bias=arch == "qwen2",
            max_seq_len=int(cfg.get("max_position_embeddings", 2048)),
            rope_scaling=scaling,
            bos_token_id=cfg.get("bos_token_id"),
            eos_token_id=cfg.get("eos_token_id"),
            name=str(cfg.get("_name_or_path", path.name)),
        )
    except KeyError as exc:
        raise CloneError(f"{path}: config key {exc.args[0]!r} is missing") from None


def safetensors_files(directory: Path) -> list[Path]:
    index = directory / "model.safetensors.index.json"
    if index.exists():
        weight_map = read_json(index).get("weight_map", {})
        files = sorted({directory / f for f in weight_map.values()})
        missing = [f.name for f in files if not f.exists()]
        if missing:
            raise CloneError(f"{index}: shard files missing: {', '.join(missing)}")
        return files
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise CloneError(f"{directory}: no *.safetensors weights")
    return files


def iter_safetensors(files: list[Path], dtype: torch.dtype) -> Iterator[tuple[str, torch.Tensor]]:
    """Tensors one at a time, so large checkpoints need not be held twice in memory."""
    from safetensors import safe_open

    for f in files:
        try:
            with safe_open(str(f), framework="pt") as handle:
                for key in handle.keys():
                    yield key, handle.get_tensor(key).to(dtype)
        except CloneError:
            raise
        except Exception as exc:  # SafetensorError, OSError on truncated files
            raise CloneError(f"{f}: unreadable safetensors file ({str(exc).splitlines()[0][:160]})") from None


def hf_to_clone_name(name: str) -> str | None:
    if name.startswith("model."):
        name = name[len("model."):]
    if "rotary_emb" in name:
        return None
    return name


def load_hf_state(directory: Path, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for key, tensor in iter_safetensors(safetensors_files(directory), dtype):
        name = hf_to_clone_name(key)
        if name is not None:
            state[name] = tensor
    return state
