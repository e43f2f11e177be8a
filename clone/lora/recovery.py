"""LoRA recovery fine-tuning after pruning: a short causal-LM run on calibration windows, on CPU.

Only the adapter's A and B train (AdamW, linear warm-up then cosine decay, gradient clipping at 1);
the pruned (or quantized) base stays frozen. Batches cycle through the calibration windows in a
seeded random order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clone.errors import CloneError
from clone.lora.adapter import TARGETS, add_lora, adapter_names, lora_parameters


@dataclass
class RecoveryResult:
    name: str
    steps: int
    losses: list[float] = field(default_factory=list)
    trainable_params: int = 0

    @property
    def first_loss(self) -> float:
        return self.losses[0] if self.losses else float("nan")

    @property
    def last_loss(self) -> float:
        tail = self.losses[-max(1, len(self.losses) // 10):]
        return sum(tail) / len(tail) if tail else float("nan")


def lm_loss(model: nn.Module, tokens: Tensor) -> Tensor:
    logits = model(tokens[:, :-1])
    return F.cross_entropy(logits.flatten(0, 1).float(), tokens[:, 1:].flatten())


def recover(model: nn.Module, calib_tokens: Tensor, steps: int = 100, lr: float = 5e-4, *, batch_size: int = 4,
            name: str = "recovery", rank: int = 8, alpha: float = 16.0, dropout: float = 0.0,
            targets: Sequence[str] = TARGETS, weight_decay: float = 0.0, warmup: int | None = None,
            seed: int = 0, progress: bool = True) -> RecoveryResult:
    """Train LoRA adapter `name` (added if absent) on next-token prediction over `calib_tokens`
    [n, seq_len]; the model keeps the adapter unmerged (see merge_lora / save_adapter)."""
    from tqdm import tqdm

    if calib_tokens.dim() != 2 or calib_tokens.shape[1] < 2 or calib_tokens.shape[0] == 0:
        raise CloneError(f"recovery needs calibration tokens [n_samples, seq_len >= 2], got shape {tuple(calib_tokens.shape)}")
    if steps < 0:
        raise CloneError(f"recovery steps {steps} must be >= 0")
    if name not in adapter_names(model):
        add_lora(model, name, rank, alpha, dropout, targets, seed)
    params = lora_parameters(model, name)
    frozen = {p: p.requires_grad for p in model.parameters()}
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    warm = warmup if warmup is not None else max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, steps - warm))))
    gen = torch.Generator().manual_seed(seed)
    order: list[int] = []
    result = RecoveryResult(name, steps, trainable_params=sum(p.numel() for p in params))
    was_training = model.training
    from clone.prune.importance import fresh_rope

    fresh_rope(model)
    model.train()
    try:
        with tqdm(range(steps), desc="LoRA recovery", disable=not progress, leave=False) as bar:
            for _ in bar:
                if len(order) < batch_size:
                    order += torch.randperm(calib_tokens.shape[0], generator=gen).tolist()
                idx, order = order[:batch_size], order[batch_size:]
                loss = lm_loss(model, calib_tokens[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                sched.step()
                result.losses.append(float(loss.detach()))
                bar.set_postfix(loss=f"{result.losses[-1]:.3f}")
    finally:
        model.train(was_training)
        for p, flag in frozen.items():
            p.requires_grad_(flag)
        for p in params:
            p.requires_grad_(True)
            p.grad = None
    return result
