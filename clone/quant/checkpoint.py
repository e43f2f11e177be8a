"""Saving and loading quantized models: packed tensors in model.safetensors, the layout in config.json.

`save_checkpoint` stores `quantization_record(model)` as the top-level "quantization" key of
config.json; `load_checkpoint` calls `build_quantized_model` when that key is present. Quantized
tensors keep their stored dtypes (uint8 codes and zero points, fp16/fp32 scales), so a model loads
back bit-identical.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from clone.errors import CloneError
from clone.model.config import ModelConfig
from clone.model.llama import Transformer
from clone.quant.linear import QuantLinear
from clone.quant.model import RECORD_FORMAT, _set_module
from clone.quant.quantizer import make_spec

QUANT_BUFFERS = ("qweight", "scales", "zeros")


def _read_state(directory: Path, quant_names: set[str], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    from clone.model.hf_loader import safetensors_files
    from safetensors import safe_open

    state = {}
    for f in safetensors_files(directory):
        try:
            with safe_open(str(f), framework="pt") as handle:
                for key in handle.keys():
                    module, _, leaf = key.rpartition(".")
                    tensor = handle.get_tensor(key)
                    keep = module in quant_names and leaf in QUANT_BUFFERS
                    state[key] = tensor if keep else tensor.to(dtype)
        except Exception as exc:
            raise CloneError(f"{f}: unreadable safetensors file ({str(exc).splitlines()[0][:160]})") from None
    return state


def build_quantized_model(config: ModelConfig, directory: Path, record: dict[str, Any],
                          dtype: torch.dtype = torch.float32) -> Transformer:
    where = directory / "config.json"
    if record.get("format") != RECORD_FORMAT:
        raise CloneError(f"{where}: quantization format {record.get('format')!r} is not supported (supported: {RECORD_FORMAT})")
    modules = record.get("modules", {})
    with torch.device("meta"):
        model = Transformer(config)
    for name, info in modules.items():
        spec = make_spec(info["bits"], info["group_size"], info["symmetric"], info.get("scale_dtype", "float16"))
        try:
            model.get_submodule(name)
        except AttributeError:
            raise CloneError(f"{where}: quantized module {name} does not exist in the model") from None
        _set_module(model, name, QuantLinear(info["in_features"], info["out_features"], spec, info["bias"], dtype))
    state = _read_state(directory, set(modules), dtype)
    if config.tie_embeddings and "lm_head" not in modules:
        state.pop("lm_head.weight", None)
    expected = set(model.state_dict())
    if config.tie_embeddings and "lm_head" not in modules:
        expected.discard("lm_head.weight")
    missing, unexpected = expected - set(state), set(state) - expected
    if missing or unexpected:
        detail = f"missing {sorted(missing)[:4]}" if missing else f"unexpected {sorted(unexpected)[:4]}"
        raise CloneError(f"{directory}: weights do not match the config ({detail})")
    own = model.state_dict()
    for key, tensor in state.items():
        if tuple(own[key].shape) != tuple(tensor.shape):
            raise CloneError(f"{directory}: tensor {key} has shape {tuple(tensor.shape)}, config says {tuple(own[key].shape)}")
    model.load_state_dict(state, strict=False, assign=True)
    if config.tie_embeddings and "lm_head" not in modules:
        model.lm_head.weight = model.embed_tokens.weight
    model.rope_cos, model.rope_sin = torch.empty(0), torch.empty(0)
    model.quant_settings = dict(record.get("settings", {}))
    return model.eval()
