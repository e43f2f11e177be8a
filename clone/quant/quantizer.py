"""One group-wise affine quantizer for weights [out, in]; the granularity is data (QuantSpec).

A group is `group_size` consecutive input columns of one output row (per-channel: the whole row).
If the group size does not divide the input width, the last group of each row is shorter (the
layout of onnxruntime's MatMulNBits with a padded last block); callers must opt in to that
(`partial_groups=True`), otherwise such a group size is rejected as bad input.
Codes are unsigned integers q in [0, 2^bits - 1] and w ~ (q - zero) * scale, with one scale and one
zero point per (row, group):
- asymmetric: the range [min(w, 0), max(w, 0)] maps onto [0, 2^bits - 1]; scale = range / (2^bits - 1),
  zero = round(-min / scale), stored as uint8.
- symmetric: scale = 2 * max|w| / (2^bits - 1) and zero = 2^(bits - 1) for every group, so it is not
  stored (codes span [-8, 7] * scale for INT4, the layout GPTQ and torchao use).
Scales are rounded up to their storage dtype (fp16 by default) before the codes are computed, so
dequantizing the stored tensors reproduces exactly the values the quantizer chose.
Storage: INT8 one code per byte; INT4 two codes per byte, the even column in the low nibble.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from clone.errors import CloneError

BITS = (4, 8)
SCALE_DTYPES = {"float16": torch.float16, "float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class QuantSpec:
    bits: int = 4
    group_size: int = 128  # 0 = per-channel (one group spans the whole input row)
    symmetric: bool = False
    scale_dtype: str = "float16"

    @property
    def maxq(self) -> int:
        return (1 << self.bits) - 1

    def group_width(self, in_features: int) -> int:
        return self.group_size if self.group_size else in_features

    def n_groups(self, in_features: int) -> int:
        gw = self.group_width(in_features)
        return (in_features + gw - 1) // gw

    @property
    def torch_scale_dtype(self) -> torch.dtype:
        return SCALE_DTYPES[self.scale_dtype]

    def to_dict(self) -> dict:
        return {"bits": self.bits, "group_size": self.group_size, "symmetric": self.symmetric, "scale_dtype": self.scale_dtype}


def make_spec(bits: int, group_size: int | None, symmetric: bool, scale_dtype: str = "float16") -> QuantSpec:
    if bits not in BITS:
        raise CloneError(f"quantization bits {bits} is not supported (allowed: {', '.join(map(str, BITS))})")
    g = 0 if group_size in (None, 0, -1) else int(group_size)
    if g < 0:
        raise CloneError(f"group size {group_size} is negative (allowed: a positive divisor of the input width, or 0 / -1 for per-channel)")
    if scale_dtype not in SCALE_DTYPES:
        raise CloneError(f"scale dtype {scale_dtype!r} is not supported (allowed: {', '.join(SCALE_DTYPES)})")
    return QuantSpec(int(bits), g, bool(symmetric), scale_dtype)


def check_width(spec: QuantSpec, in_features: int, where: str, partial_groups: bool = False) -> None:
    if spec.group_size and in_features % spec.group_size and not partial_groups:
        divisors = [d for d in (32, 64, 128, 256) if in_features % d == 0]
        hint = f"e.g. {', '.join(map(str, divisors))}" if divisors else f"a divisor of {in_features}"
        raise CloneError(f"group size {spec.group_size} does not divide the input width {in_features} of {where} "
                         f"(allowed: {hint}, 0 for per-channel, or partial_groups=True for a shorter last group)")


def group_params(w: Tensor, spec: QuantSpec) -> tuple[Tensor, Tensor | None]:
    """w [out, n, g] -> scale [out, n] (storage dtype), zero [out, n] uint8 (None when symmetric)."""
    w = w.float()
    info = torch.finfo(spec.torch_scale_dtype)
    if spec.symmetric:
        amax = w.abs().amax(-1)
        scale = (2 * amax / spec.maxq)
    else:
        lo = w.amin(-1).clamp(max=0)
        hi = w.amax(-1).clamp(min=0)
        scale = (hi - lo) / spec.maxq
    scale = torch.where(scale > 0, scale, torch.ones_like(scale)).clamp(info.tiny, info.max)
    stored = scale.to(spec.torch_scale_dtype)
    # Round the stored scale up, never down, so the group's range still fits the code range.
    up = torch.nextafter(stored, torch.full_like(stored, float("inf")))
    scale = torch.where(stored.float() < scale, up, stored)
    if spec.symmetric:
        return scale, None
    zero = torch.round(-lo / scale.float()).clamp(0, spec.maxq).to(torch.uint8)
    return scale, zero


def row_group_params(w: Tensor, spec: QuantSpec) -> tuple[Tensor, Tensor | None]:
    """w [out, in] -> per-group scale/zero [out, n_groups]; a short last group is padded with a copy
    of its own last column, which leaves its min and max unchanged."""
    out, n_in = w.shape
    gw = spec.group_width(n_in)
    n = spec.n_groups(n_in)
    if n * gw != n_in:
        w = torch.cat([w, w[:, -1:].expand(out, n * gw - n_in)], dim=1)
    return group_params(w.reshape(out, n, gw), spec)


def _expand(t: Tensor, n_in: int, spec: QuantSpec) -> Tensor:
    """Per-group values [out, n] -> per-column [out, n_in] (the last group may be short)."""
    gw = spec.group_width(n_in)
    if t.shape[1] != spec.n_groups(n_in):
        raise ValueError(f"{t.shape[1]} groups do not fit width {n_in} with group size {gw}")
    return t.repeat_interleave(gw, dim=1)[:, :n_in]


def zero_values(spec: QuantSpec, zero: Tensor | None, like: Tensor) -> Tensor:
    if zero is None:
        return torch.full_like(like, float(1 << (spec.bits - 1)), dtype=torch.float32)
    return zero.float()


def quantize_codes(w: Tensor, scale: Tensor, zero: Tensor | None, spec: QuantSpec) -> Tensor:
    """w [out, in] with per-group scale/zero [out, n] -> uint8 codes [out, in]."""
    n_in = w.shape[1]
    s = _expand(scale.float(), n_in, spec)
    z = _expand(zero_values(spec, zero, scale), n_in, spec)
    return torch.clamp(torch.round(w.float() / s + z), 0, spec.maxq).to(torch.uint8)


def dequantize_codes(q: Tensor, scale: Tensor, zero: Tensor | None, spec: QuantSpec,
                     dtype: torch.dtype = torch.float32) -> Tensor:
    out, n_in = q.shape
    gw = spec.group_width(n_in)
    if scale.shape[1] * gw == n_in:  # whole groups: broadcast instead of expanding scales per column
        s = scale.float()[:, :, None]
        z = zero_values(spec, zero, scale)[:, :, None]
        return ((q.view(out, -1, gw).float() - z) * s).view(out, n_in).to(dtype)
    s = _expand(scale.float(), n_in, spec)
    z = _expand(zero_values(spec, zero, scale), n_in, spec)
    return ((q.float() - z) * s).to(dtype)


def quantize_rtn(w: Tensor, spec: QuantSpec) -> tuple[Tensor, Tensor, Tensor | None]:
    """Round to nearest: codes [out, in], scale, zero."""
    scale, zero = row_group_params(w, spec)
    return quantize_codes(w, scale, zero, spec), scale, zero


def pack(codes: Tensor, bits: int) -> Tensor:
    """uint8 codes [out, in] -> packed bytes [out, ceil(in * bits / 8)]."""
    if bits == 8:
        return codes.contiguous()
    if codes.shape[1] % 2:
        codes = torch.cat([codes, torch.zeros_like(codes[:, :1])], dim=1)
    return (codes[:, 0::2] | (codes[:, 1::2] << 4)).contiguous()


def unpack(packed: Tensor, bits: int, in_features: int) -> Tensor:
    if bits == 8:
        return packed
    codes = torch.stack((packed & 0x0F, packed >> 4), dim=-1).reshape(packed.shape[0], -1)
    return codes[:, :in_features]


def fake_quantize(w: Tensor, spec: QuantSpec) -> Tensor:
    """Quantize and dequantize with RTN (for error studies)."""
    q, s, z = quantize_rtn(w, spec)
    return dequantize_codes(q, s, z, spec, w.dtype)
