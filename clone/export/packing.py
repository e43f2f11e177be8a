"""Group-quantized weights in onnxruntime's MatMulNBits layout, and back.

MatMulNBits (com.microsoft) stores a weight W [N out, K in] as blocks along K: B is uint8
[N, n_blocks, block_size * bits / 8] with the first value of a byte pair in the low nibble, scales
[N * n_blocks] and optional zero points, 4-bit ones packed two per byte along the block axis.
Dequantization is (q - zero_point) * scale. The block size must be a power of two >= 16, so a group
size that is not (per-channel groups, g = 96, ...) is represented exactly by a smaller power-of-two
block with the group's scale and zero point repeated; the tail of a partial last block is padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn

from clone.errors import CloneError


@dataclass
class QuantizedWeight:
    """A weight as integer codes with per-group affine parameters: W = (codes - zero) * scale.

    codes: uint8 [N, K] in [0, 2**bits); scales, zeros: float32 [N, K // group_size]. Zeros are
    integers for an integer-zero-point quantizer, and may be fractional (min/max quantizers)."""

    codes: np.ndarray
    scales: np.ndarray
    zeros: np.ndarray | None
    bits: int
    group_size: int
    bias: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.codes.shape  # type: ignore[return-value]

    def dequantize(self) -> np.ndarray:
        g = self.group_size
        scales = np.repeat(self.scales.astype(np.float32), g, axis=1)[:, : self.codes.shape[1]]
        zeros = (np.repeat(self.zeros.astype(np.float32), g, axis=1)[:, : self.codes.shape[1]]
                 if self.zeros is not None else np.float32(2 ** (self.bits - 1)))
        return (self.codes.astype(np.float32) - zeros) * scales

    def integer_zeros(self) -> bool:
        return self.zeros is None or bool(np.all(self.zeros == np.round(self.zeros)))


@dataclass
class NBitsTensors:
    """The initializers and attributes of one MatMulNBits node."""

    B: np.ndarray
    scales: np.ndarray
    zero_points: np.ndarray | None
    bits: int
    block_size: int
    K: int
    N: int
    bias: np.ndarray | None = None


def block_size_for(group_size: int, K: int) -> int | None:
    """A MatMulNBits block size that represents groups of `group_size` exactly, or None."""
    if group_size >= K:
        return 128 if K >= 128 else 32 if K >= 32 else 16
    if group_size % 16:
        return None
    block = group_size & -group_size  # largest power of two dividing the group
    return min(block, 256)


def pack_nbits(qw: QuantizedWeight) -> NBitsTensors:
    """Lay out a QuantizedWeight for MatMulNBits, using the model's own codes, scales and zeros."""
    if qw.bits not in (4, 8):
        raise CloneError(f"MatMulNBits export supports 4 and 8 bits, got {qw.bits}")
    N, K = qw.codes.shape
    g = min(qw.group_size, K)
    block = block_size_for(g, K)
    if block is None:
        raise CloneError(f"group size {qw.group_size} has no MatMulNBits block size (needs a multiple of 16)")
    n_blocks = -(-K // block)
    padded = n_blocks * block
    # Per-column group index, then per-block group index (each block lies inside one group).
    block_group = (np.arange(n_blocks) * block) // g
    block_group = np.minimum(block_group, qw.scales.shape[1] - 1)
    scales = qw.scales.astype(np.float32)[:, block_group]
    if qw.zeros is None:
        zero_fill = 2 ** (qw.bits - 1)
        zeros_blk = None
    else:
        zeros_blk = qw.zeros[:, block_group]
        zero_fill = 0
    codes = np.zeros((N, padded), dtype=np.uint8)
    codes[:, :K] = qw.codes
    if padded > K:  # padding codes equal the zero point: they dequantize to 0
        if zeros_blk is not None and qw.integer_zeros():
            codes[:, K:] = zeros_blk[:, -1:].astype(np.uint8)
        else:
            codes[:, K:] = zero_fill
    if qw.bits == 4:
        pairs = codes.reshape(N, padded // 2, 2)
        B = (pairs[..., 0] | (pairs[..., 1] << 4)).astype(np.uint8).reshape(N, n_blocks, block // 2)
    else:
        B = codes.reshape(N, n_blocks, block)
    zp: np.ndarray | None = None
    if zeros_blk is not None:
        if qw.integer_zeros():
            z = zeros_blk.astype(np.uint8)
            if qw.bits == 4:
                if n_blocks % 2:
                    z = np.concatenate([z, np.zeros((N, 1), np.uint8)], axis=1)
                zp = (z[:, 0::2] | (z[:, 1::2] << 4)).astype(np.uint8)
            else:
                zp = z
        else:
            zp = zeros_blk.astype(np.float32)
    bias = qw.bias.astype(np.float32) if qw.bias is not None else None
    return NBitsTensors(np.ascontiguousarray(B), np.ascontiguousarray(scales.reshape(-1)),
                        None if zp is None else np.ascontiguousarray(zp.reshape(N, -1) if zp.dtype == np.uint8 else zp.reshape(-1)),
                        qw.bits, block, K, N, bias)


def unpack_nbits(B: np.ndarray, scales: np.ndarray, zero_points: np.ndarray | None, bits: int,
                 block_size: int, K: int, N: int) -> np.ndarray:
    """Dequantize MatMulNBits initializers to the float weight [N, K] they stand for."""
    n_blocks = -(-K // block_size)
    B = B.reshape(N, n_blocks, -1)
    if bits == 4:
        codes = np.stack([B & 0x0F, B >> 4], axis=-1).reshape(N, n_blocks, block_size)
    elif bits == 8:
        codes = B.reshape(N, n_blocks, block_size)
    else:
        raise CloneError(f"unpack_nbits: {bits} bits is not supported")
    s = scales.reshape(N, n_blocks, 1).astype(np.float32)
    if zero_points is None:
        z = np.float32(2 ** (bits - 1))
    elif zero_points.dtype == np.uint8:
        zp = zero_points.reshape(N, -1)
        if bits == 4:
            zp = np.stack([zp & 0x0F, zp >> 4], axis=-1).reshape(N, -1)
        z = zp[:, :n_blocks].reshape(N, n_blocks, 1).astype(np.float32)
    else:
        z = zero_points.reshape(N, n_blocks, 1).astype(np.float32)
    w = (codes.astype(np.float32) - z) * s
    return w.reshape(N, n_blocks * block_size)[:, :K]


def concat_nbits(parts: list[NBitsTensors]) -> NBitsTensors | None:
    """Stack several MatMulNBits weights along N (fused QKV or gate-up), if their layouts agree."""
    first = parts[0]
    for p in parts[1:]:
        if (p.bits, p.block_size, p.K) != (first.bits, first.block_size, first.K):
            return None
        if (p.zero_points is None) != (first.zero_points is None):
            return None
        if p.zero_points is not None and p.zero_points.dtype != first.zero_points.dtype:
            return None
        if (p.bias is None) != (first.bias is None):
            return None
    zp = None
    if first.zero_points is not None:
        zp = np.concatenate([p.zero_points for p in parts], axis=0)
    bias = np.concatenate([p.bias for p in parts]) if first.bias is not None else None
    return NBitsTensors(np.concatenate([p.B for p in parts], axis=0), np.concatenate([p.scales for p in parts]),
                        zp, first.bits, first.block_size, first.K, sum(p.N for p in parts), bias)


def quantized_weight_of(module: nn.Module) -> QuantizedWeight | None:
    """The module's quantized weight if it is a quantized linear layer, else None (float Linear).

    Understands clone.quant.QuantLinear (packed `qweight`, `scales` [out, n_groups], `zeros` uint8 or
    None for symmetric, `spec`) and any module with `quantized_weight() -> QuantizedWeight`."""
    if isinstance(module, nn.Linear):
        return None
    if hasattr(module, "quantized_weight"):
        return module.quantized_weight()
    if not (hasattr(module, "qweight") and hasattr(module, "spec") and hasattr(module, "codes")):
        return None
    spec = module.spec
    n_in = int(module.in_features)
    codes = module.codes().detach().cpu().numpy().astype(np.uint8)
    scales = module.scales.detach().float().cpu().numpy()
    zeros = module.zeros.detach().float().cpu().numpy() if module.zeros is not None else None
    bias = module.bias.detach().float().cpu().numpy() if module.bias is not None else None
    # the quantizer's group width; a partial last group is shorter, so K / n_groups would be wrong
    group = int(spec.group_size) if getattr(spec, "group_size", None) else n_in
    return QuantizedWeight(codes, scales, zeros, int(spec.bits), group, bias)
