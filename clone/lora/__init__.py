"""LoRA adapters (rank 8, alpha 16 by default) for recovery after pruning and for per-domain experts.

    add_lora(model, "shakespeare"); recover(model, tokens, steps=100, name="shakespeare")
    save_adapter(model, "out/lora-shakespeare", "shakespeare"); merge_lora(model)
    set_mix(model, {"law": 0.7, "code": torch.tensor([0.1, 0.9])})   # soft mixture, per request
"""

from clone.lora.adapter import (
    TARGETS,
    LoRAAdapter,
    LoRALinear,
    adapter_names,
    add_lora,
    lora_modules,
    lora_parameters,
    merge_lora,
    remove_lora,
    set_mix,
)
from clone.lora.io import load_adapter, read_adapter_config, save_adapter
from clone.lora.recovery import RecoveryResult, lm_loss, recover

__all__ = [
    "TARGETS", "LoRAAdapter", "LoRALinear", "RecoveryResult", "adapter_names", "add_lora", "lm_loss",
    "load_adapter", "lora_modules", "lora_parameters", "merge_lora", "read_adapter_config", "recover",
    "remove_lora", "save_adapter", "set_mix",
]
