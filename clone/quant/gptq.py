"""GPTQ (Frantar et al., 2022) for one weight matrix, given the Hessian of its layer-wise loss.

For a linear layer with inputs X (tokens x in), GPTQ minimises ||W X^T - Q X^T||^2 column by column:
H = 2 X^T X / n; quantize column j, spread its error onto the not-yet-quantized columns with the
inverse Hessian (OBS update), in blocks of `block_size` columns with lazy batch updates. Settings:
- damping: H += damp * mean(diag(H)) * I (damp = 0.01 by default; raised x10 if Cholesky fails);
- dead inputs (H_jj == 0) get H_jj = 1 and their weight column set to 0;
- the inverse Hessian enters through the upper Cholesky factor of H^-1;
- group parameters: in natural order, a group's scale/zero come from the (already error-updated)
  weights when its first column is reached; with act_order (columns by decreasing H_jj) they come
  from the original weights up front ("static groups"), so groups stay contiguous in storage.
"""

from __future__ import annotations

import torch
from torch import Tensor

from clone.quant.quantizer import QuantSpec, group_params, row_group_params


def _inverse_cholesky(H: Tensor, damp: float) -> Tensor:
    n = H.shape[0]
    mean_diag = float(torch.diag(H).mean())
    for attempt in range(6):
        Hd = H + (damp * 10**attempt) * max(mean_diag, 1e-12) * torch.eye(n, dtype=H.dtype)
        L, info = torch.linalg.cholesky_ex(Hd)
        if int(info) == 0:
            Hinv = torch.cholesky_inverse(L)
            U, info = torch.linalg.cholesky_ex(Hinv, upper=True)
            if int(info) == 0:
                return U
    raise RuntimeError("GPTQ: the Hessian is not positive definite even with strong damping")


def gptq_quantize(weight: Tensor, H: Tensor, spec: QuantSpec, *, act_order: bool = False, damp: float = 0.01,
                  block_size: int = 128) -> tuple[Tensor, Tensor, Tensor | None]:
    """weight [out, in], H [in, in] -> (codes [out, in] uint8, scale [out, n], zero [out, n] or None)."""
    W = weight.detach().float().clone()
    H = H.detach().double().clone()
    out, n_in = W.shape
    gw = spec.group_width(n_in)
    n_groups = spec.n_groups(n_in)
    dead = torch.diag(H) == 0
    H[dead, dead] = 1.0
    W[:, dead] = 0.0

    scale = torch.empty(out, n_groups, dtype=spec.torch_scale_dtype)
    zero = None if spec.symmetric else torch.empty(out, n_groups, dtype=torch.uint8)
    if act_order:
        s0, z0 = row_group_params(W, spec)
        scale.copy_(s0)
        if zero is not None:
            zero.copy_(z0)
        perm = torch.argsort(torch.diag(H), descending=True)
    else:
        perm = torch.arange(n_in)
    W = W[:, perm]
    H = H[perm][:, perm]
    Hinv = _inverse_cholesky(H, damp).float()
    codes = torch.zeros(out, n_in, dtype=torch.uint8)

    maxq = float(spec.maxq)
    sym_zero = float(1 << (spec.bits - 1))
    s_col = torch.empty(out)  # float scale and zero of the current column's group
    z_col = torch.empty(out)
    current_group = -1
    for i1 in range(0, n_in, block_size):
        i2 = min(i1 + block_size, n_in)
        W1 = W[:, i1:i2].clone()
        Err1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        for j in range(i2 - i1):
            col = int(perm[i1 + j])
            g = col // gw
            if not act_order and col % gw == 0:
                # Current values of the group's columns: in-block ones in W1, later ones in W minus
                # the pending lazy update from this block's errors so far.
                hi = min(col + gw, n_in)
                parts = [W1[:, j : min(hi, i2) - i1]]
                if hi > i2:
                    pending = Err1[:, :j] @ Hinv[i1 : i1 + j, i2:hi]
                    parts.append(W[:, i2:hi] - pending)
                cur = torch.cat(parts, dim=1)
                sg, zg = group_params(cur.reshape(out, 1, cur.shape[1]), spec)
                scale[:, g] = sg[:, 0]
                if zero is not None:
                    zero[:, g] = zg[:, 0]
            if g != current_group:
                s_col = scale[:, g].float()
                z_col = zero[:, g].float() if zero is not None else torch.full((out,), sym_zero)
                current_group = g
            w = W1[:, j]
            q = torch.clamp(torch.round(w / s_col + z_col), 0, maxq)
            codes[:, i1 + j] = q.to(torch.uint8)
            err = (w - (q - z_col) * s_col) / Hinv1[j, j]
            W1[:, j:] -= err[:, None] * Hinv1[j : j + 1, j:]
            Err1[:, j] = err
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]

    inv = torch.argsort(perm)
    return codes[:, inv].contiguous(), scale, zero


class HessianAccumulator:
    """H = 2/n * sum over tokens x x^T of a layer's inputs, accumulated batch by batch (float64)."""

    def __init__(self, width: int) -> None:
        self.H = torch.zeros(width, width, dtype=torch.float64)
        self.n = 0

    def add(self, x: Tensor) -> None:
        flat = x.detach().reshape(-1, x.shape[-1]).double()
        self.H += flat.T @ flat
        self.n += flat.shape[0]

    def hessian(self) -> Tensor:
        return 2.0 * self.H / max(self.n, 1)
