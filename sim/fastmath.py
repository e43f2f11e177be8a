"""numpy forms of the two arithmetic hot paths of hw/reference.py (GEMV tiles and the LoRA path).

Same arithmetic as `hw.reference.mac_gemv` / `lora_path` (saturation after every K tile, round-half-up
shifts, INT16/INT32 clamps), vectorised over tokens, rows and lanes; tests/test_sim_machine.py
checks them bit for bit against the reference on random and extreme inputs. Everything else the
simulator computes (decode checks, router, SFU, buffers) is hw.reference's own code.
"""
from __future__ import annotations

import numpy as np

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def words_to_lanes(words: list[int], nbytes: int, bits: int = 8) -> np.ndarray:
    """Raw buffer words -> signed lanes (len(words), nbytes*8/bits) as int64."""
    raw = b"".join(int(w).to_bytes(nbytes, "little") for w in words)
    if bits == 8:
        return np.frombuffer(raw, dtype=np.int8).astype(np.int64).reshape(len(words), nbytes)
    if bits == 32:
        return np.frombuffer(raw, dtype="<i4").astype(np.int64).reshape(len(words), nbytes // 4)
    if bits == 4:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(len(words), nbytes)
        nib = np.stack([b & 0xF, b >> 4], axis=-1).reshape(len(words), 2 * nbytes).astype(np.int64)
        return (nib ^ 8) - 8
    raise ValueError(bits)


def lanes_to_word(lanes: np.ndarray, bits: int) -> int:
    dtype = {8: "<u1", 16: "<u2", 32: "<u4"}[bits]
    mask = (1 << bits) - 1
    return int.from_bytes((np.asarray(lanes, dtype=np.int64) & mask).astype(dtype).tobytes(), "little")


def rshr(v: np.ndarray, s: int) -> np.ndarray:
    return v if s == 0 else (v + (1 << (s - 1))) >> s


def gemv(n: int, x_words: list[int], w_words: list[int], kt: int, m: int, int4: bool,
         init: np.ndarray | None) -> np.ndarray:
    """(m, n) INT32 results of m tokens x kt K tiles; init (m, n) for the ACC flag."""
    x = words_to_lanes(x_words, n).reshape(m, kt, n)
    if int4:
        nib = words_to_lanes(w_words, n * n, bits=4).reshape(-1, n, n)   # 2 tiles per word
        w = nib[:kt]
    else:
        w = words_to_lanes(w_words, n * n).reshape(kt, n, n)
    psum = np.einsum("mtc,trc->mtr", x, w)                                   # exact in int64
    acc0 = np.zeros((m, n), dtype=np.int64) if init is None else init.astype(np.int64)
    run = acc0[:, None, :] + np.cumsum(psum, axis=1)
    if run.min(initial=0) >= INT32_MIN and run.max(initial=0) <= INT32_MAX:
        return run[:, -1, :]                                                # no tile saturated
    acc = acc0
    for t in range(kt):                                                     # per K tile, not per PE
        acc = np.clip(acc + psum[:, t, :], INT32_MIN, INT32_MAX)
    return acc


def lora_hs(a_rows: np.ndarray, x: np.ndarray, gates: np.ndarray, sh_a: int) -> np.ndarray:
    """a_rows (slots, rk, D_in), x (D_in,), gates (slots,) -> hs (slots, rk) INT16."""
    h = a_rows @ x
    return np.clip(rshr(h * gates[:, None], 15 + sh_a), -32768, 32767)


def lora_y(b_cols: np.ndarray, hs: np.ndarray) -> np.ndarray:
    """b_cols (slots, D_out, rk), hs (slots, rk) -> y (D_out,) exact."""
    return np.einsum("sdk,sk->d", b_cols, hs)


def lora_out(base: np.ndarray, y: np.ndarray, sh_b: int) -> np.ndarray:
    return np.clip(base + rshr(y, sh_b), INT32_MIN, INT32_MAX)
