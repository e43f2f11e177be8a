"""Bit-exact Python reference of the accelerator (docs/hw-spec.md in executable form).

The RTL test benches score the hardware against these functions, and the cycle-level simulator in
sim/ can reuse them: block functions (`mac_gemv`, `lora_path`, `route`, `dvfs_cycles`, ...) are pure,
`cycles()` gives every command's cycle count T, and `AccelModel` executes descriptors on a full
architectural state (buffers, eNVM, gates, slots, SFU tables) exactly like the RTL does.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from math import exp, isqrt

from hw.params import AccelParams


class Op(IntEnum):
    NOP = 0
    LOAD = 1
    STORE = 2
    GEMV = 3
    LORA = 4
    ROUTE = 5
    ACTIVATE = 6
    LOAD_ADAPTER = 7
    DVFS_SET = 8
    DVFS_POLICY = 9
    PREDICT_LEN = 10


class Err(IntEnum):
    NONE = 0
    OPCODE = 1
    ADDR = 2
    ADAPTER = 3
    LEVEL = 4
    ARG = 5
    QFULL = 6
    BUF = 7
    ABORT = 8


class Buf(IntEnum):
    ABUF = 0
    WBUF = 1
    OBUF = 2
    EMB = 3


ID_VALUE = 0xC10E0001


# ---------------------------------------------------------------- fixed-point helpers
def sat(v: int, bits: int) -> int:
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return lo if v < lo else hi if v > hi else v


def rshr(v: int, s: int) -> int:
    """Arithmetic right shift with round-half-up (spec 3: rshr)."""
    return v if s == 0 else (v + (1 << (s - 1))) >> s


def sext(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def pack(lanes: list[int], bits: int) -> int:
    word = 0
    for i, v in enumerate(lanes):
        word |= (v & ((1 << bits) - 1)) << (bits * i)
    return word


def unpack(word: int, bits: int, count: int, signed: bool = True) -> list[int]:
    out = [(word >> (bits * i)) & ((1 << bits) - 1) for i in range(count)]
    return [sext(v, bits) for v in out] if signed else out


def word_to_beats(word: int, nbeats: int) -> list[int]:
    return [(word >> (32 * b)) & 0xFFFFFFFF for b in range(nbeats)]


def beats_to_word(beats: list[int]) -> int:
    return sum((b & 0xFFFFFFFF) << (32 * i) for i, b in enumerate(beats))


# ---------------------------------------------------------------- descriptors
@dataclass(frozen=True)
class Desc:
    op: int
    f: int = 0
    a: int = 0
    b: int = 0
    c: int = 0
    d: int = 0
    e: int = 0

    def encode(self) -> int:
        return ((self.op & 0xF) | (self.f & 0xF) << 4 | (self.a & 0xFFF) << 8 | (self.b & 0xFFF) << 20
                | (self.c & 0xFFF) << 32 | (self.d & 0xFFF) << 44 | (self.e & 0xFF) << 56)

    @classmethod
    def decode(cls, word: int) -> "Desc":
        return cls(word & 0xF, (word >> 4) & 0xF, (word >> 8) & 0xFFF, (word >> 20) & 0xFFF,
                   (word >> 32) & 0xFFF, (word >> 44) & 0xFFF, (word >> 56) & 0xFF)


# ---------------------------------------------------------------- MAC array
def weight_tile(p: AccelParams, word: int, int4: bool, half: int) -> list[list[int]]:
    """W[r][c] of one K tile from a WBUF word (INT8, or INT4 half `half` sign-extended)."""
    n = p.n
    if int4:
        nib = unpack(word >> (4 * n * n * half), 4, n * n)
        return [nib[r * n:(r + 1) * n] for r in range(n)]
    byt = unpack(word, 8, n * n)
    return [byt[r * n:(r + 1) * n] for r in range(n)]


def mac_tile(acc: list[int], x: list[int], w: list[list[int]]) -> list[int]:
    """One array cycle: per-row dot product of N lanes, saturating INT32 accumulate."""
    return [sat(a + sum(xi * wi for xi, wi in zip(x, row)), 32) for a, row in zip(acc, w)]


def mac_gemv(p: AccelParams, xs: list[list[int]], wwords: list[int], int4: bool,
             init: list[int] | None = None) -> list[int]:
    """y = sat-accumulate over K tiles; xs: kt activation words, wwords: WBUF words from w."""
    acc = list(init) if init is not None else [0] * p.n
    for t, x in enumerate(xs):
        word = wwords[t // 2] if int4 else wwords[t]
        acc = mac_tile(acc, x, weight_tile(p, word, int4, t % 2))
    return acc


# ---------------------------------------------------------------- LoRA path
def lora_y(p: AccelParams, x: list[int], experts: list[tuple[list[list[int]], list[list[int]]]],
           gates: list[int], sh_a: int) -> list[int]:
    """y[d] = sum over used slots and rank of B[d][k] * hs[k] (exact), hs gated and saturated."""
    hs = []
    for (a_m, _), g in zip(experts, gates):
        for k in range(p.rk):
            h = sum(a * xi for a, xi in zip(a_m[k], x))
            hs.append(sat(rshr(h * g, 15 + sh_a), 16))
    return [sum(b_m[d][k] * hs[s * p.rk + k] for s, (_, b_m) in enumerate(experts)
                for k in range(p.rk)) for d in range(p.nt * p.n)]


def lora_path(p: AccelParams, x: list[int], base: list[int], experts: list[tuple[list[list[int]],
              list[list[int]]]], gates: list[int], sh_a: int, sh_b: int) -> list[int]:
    """x: D_in INT8; base: D_out INT32; experts: (A rk x D_in, B D_out x rk) per used slot."""
    y = lora_y(p, x, experts, gates, sh_a)
    return [sat(b + rshr(v, sh_b), 32) for b, v in zip(base, y)]


def adapter_words(p: AccelParams, a_m: list[list[int]], b_m: list[list[int]]) -> list[int]:
    """eNVM words (N bytes each, address order) of one expert: A rows by tile, then B^T."""
    n = p.n
    words = [pack(a_m[k][t * n:(t + 1) * n], 8) for k in range(p.rk) for t in range(p.kt)]
    words += [pack([b_m[j * n + c][k] for c in range(n)], 8) for k in range(p.rk) for j in range(p.nt)]
    return words


def adapter_from_words(p: AccelParams, words: list[int]) -> tuple[list[list[int]], list[list[int]]]:
    n = p.n
    a_m = [sum((unpack(words[k * p.kt + t], 8, n) for t in range(p.kt)), []) for k in range(p.rk)]
    b_m = [[0] * p.rk for _ in range(p.nt * n)]
    for k in range(p.rk):
        for j in range(p.nt):
            lanes = unpack(words[p.rk * p.kt + k * p.nt + j], 8, n)
            for c in range(n):
                b_m[j * n + c][k] = lanes[c]
    return a_m, b_m


# ---------------------------------------------------------------- router
def exp_lut(p: AccelParams) -> list[int]:
    step = 2.0 ** (p.lut_shift - 19)
    return [int(32768 * exp(-i * step) + 0.5) for i in range(p.lut_n)]


@dataclass
class RouteResult:
    cos: list[int]
    z: list[int]
    gates: list[int]
    argmax: int


def route(p: AccelParams, q: list[int], embs: list[list[int]], beta: int) -> RouteResult:
    nq = isqrt(sum(v * v for v in q))
    cos, z = [], []
    for k in embs:
        dot = sum(a * b for a, b in zip(q, k))
        den = nq * isqrt(sum(v * v for v in k))
        if den == 0:
            c = 0
        else:
            mag = (abs(dot) << 15) // den
            c = sat(-mag if dot < 0 else mag, 16)
        cos.append(c)
        z.append(c * beta)
    zmax = max(z)
    arg = z.index(zmax)
    lut = exp_lut(p)
    ex = [lut[min((zmax - v) >> p.lut_shift, p.lut_n - 1)] for v in z]
    s = sum(ex)
    gates = [(v << 15) // s for v in ex]
    return RouteResult(cos, z, gates, arg)


# ---------------------------------------------------------------- SFU
def vf_reset(p: AccelParams) -> list[tuple[int, int]]:
    """(vcode, fcode) per level at reset."""
    return [(60 + (l * 40) // (p.nl - 1), 8 + (l * 32) // (p.nl - 1)) for l in range(p.nl)]


def policy_index(p: AccelParams, load: int, slack: int, phase: int) -> int:
    return (phase & 1) << (p.lb + p.sb) | slack << p.lb | load


def dvfs_busy(p: AccelParams, vcur: int, vt: int) -> int:
    return abs(vt - vcur) * p.t_slew + p.t_settle + p.t_lock


# ---------------------------------------------------------------- cycle formulas
def cycles(p: AccelParams, d: Desc, vcur: int = 0, vt: int = 0, stall: int = 0) -> int:
    """T of a command that passes its checks (spec section 6). For DVFS pass vcur and the target
    vcode vt; for streaming commands the stall cycles."""
    op = d.op
    if op in (Op.NOP, Op.ACTIVATE, Op.PREDICT_LEN):
        return 1
    if op == Op.LOAD:
        return 1 + d.d * p.beats(d.f) + stall
    if op == Op.STORE:
        return 1 + d.d * (1 + p.beats(d.f)) + stall
    if op == Op.GEMV:
        return 1 + d.e * (d.d + 3)
    if op == Op.LORA:
        n = d.f
        return 1 + n * p.rk * p.kt + 2 + p.nt * (n * p.rk + 3)
    if op == Op.ROUTE:
        return (1 + p.ne * p.et + 2 + p.sq + p.ne * (p.sq + p.dw + 1) + p.ne
                + p.ne * (p.dw + 1))
    if op == Op.LOAD_ADAPTER:
        return 1 + p.ew * (p.b_a + p.t_w) + stall
    if op in (Op.DVFS_SET, Op.DVFS_POLICY):
        return 1 + dvfs_busy(p, vcur, vt)
    return 1


def access_counts(p: AccelParams, d: Desc) -> dict[str, int]:
    """Issued memory accesses, MACs and stream beats of an accepted command, from the RTL
    schedules (for energy models). Read ports are not gated in the RTL; these are the reads whose
    data is used."""
    c = dict.fromkeys(["abuf_rd", "wbuf_rd", "obuf_rd", "obuf_wr", "emb_rd", "buf_wr", "envm_rd",
                       "envm_wr", "macs", "beats_in", "beats_out"], 0)
    if d.op == Op.LOAD:
        c["buf_wr"], c["beats_in"] = d.d, d.d * p.beats(d.f)
    elif d.op == Op.STORE:
        c["obuf_rd" if d.f == Buf.OBUF else "abuf_rd" if d.f == Buf.ABUF else
          "wbuf_rd" if d.f == Buf.WBUF else "emb_rd"] = d.d
        c["beats_out"] = d.d * p.beats(d.f)
    elif d.op == Op.GEMV:
        c["abuf_rd"] = c["wbuf_rd"] = d.e * d.d
        c["obuf_rd"] = d.e if d.f & 2 else 0
        c["obuf_wr"] = d.e
        c["macs"] = d.e * d.d * p.n * p.n
    elif d.op == Op.LORA:
        na, nb = d.f * p.rk * p.kt, p.nt * d.f * p.rk
        c["envm_rd"], c["abuf_rd"] = na + nb, na
        c["obuf_rd"] = c["obuf_wr"] = p.nt
        c["macs"] = (na + nb) * p.n
    elif d.op == Op.ROUTE:
        c["abuf_rd"] = c["emb_rd"] = p.ne * p.et
        c["macs"] = 3 * p.ne * p.et * p.n
    elif d.op == Op.LOAD_ADAPTER:
        c["envm_wr"], c["beats_in"] = p.ew, p.ew * p.b_a
    return c


# ---------------------------------------------------------------- whole-accelerator model
@dataclass
class AccelModel:
    """Architectural state and descriptor execution, command by command."""
    p: AccelParams
    abuf: list[int] = field(default_factory=list)   # raw words
    wbuf: list[int] = field(default_factory=list)
    obuf: list[int] = field(default_factory=list)
    emb: list[int] = field(default_factory=list)
    envm: list[int] = field(default_factory=list)
    gates: list[int] = field(default_factory=list)
    slots: list[int] = field(default_factory=list)
    cos: list[int] = field(default_factory=list)
    route_info: tuple[int, int] = (0, 0)
    level_seen: int = 0
    vf: list[tuple[int, int]] = field(default_factory=list)
    policy: list[int] = field(default_factory=list)
    lenlut: list[int] = field(default_factory=list)
    level: int = 0
    vcur: int = 0
    fcur: int = 0
    task: int = 0
    len_pred: int = 0
    err: bool = False
    err_code: int = 0
    last_cycles: int = 0

    def __post_init__(self) -> None:
        p = self.p
        self.abuf = self.abuf or [0] * p.abuf_depth
        self.wbuf = self.wbuf or [0] * p.wbuf_depth
        self.obuf = self.obuf or [0] * p.obuf_depth
        self.emb = self.emb or [0] * p.emb_depth
        self.envm = self.envm or [0] * p.envm_depth
        self.gates = self.gates or [0] * p.ne
        self.slots = self.slots or [s % p.ne for s in range(p.nslot)]
        self.cos = self.cos or [0] * p.ne
        self.vf = self.vf or vf_reset(p)
        self.policy = self.policy or [0] * p.npol
        self.lenlut = self.lenlut or [0] * p.nlen
        self.vcur, self.fcur = self.vf[0]

    def buffers(self) -> list[list[int]]:
        return [self.abuf, self.wbuf, self.obuf, self.emb]

    def check(self, d: Desc) -> int:
        """Error code of descriptor d (spec section 5), 0 if it runs."""
        p = self.p
        if d.op > 10:
            return Err.OPCODE
        if d.op in (Op.LOAD, Op.STORE):
            if d.f > 3:
                return Err.BUF
            if d.d == 0:
                return Err.ARG
            if d.a + d.d > p.depth(d.f):
                return Err.ADDR
        elif d.op == Op.GEMV:
            int4 = d.f & 1
            if d.d == 0 or d.e == 0:
                return Err.ARG
            wt = (d.d + 1) // 2 if int4 else d.d
            if (d.a + d.e * d.d > p.abuf_depth or d.b + wt > p.wbuf_depth
                    or d.c + d.e > p.obuf_depth):
                return Err.ADDR
        elif d.op == Op.LORA:
            if d.f == 0 or d.f > p.nslot:
                return Err.ARG
            if d.a + p.kt > p.abuf_depth or d.b + p.nt > p.obuf_depth or d.c + p.nt > p.obuf_depth:
                return Err.ADDR
        elif d.op == Op.ROUTE:
            if d.a + p.et > p.abuf_depth:
                return Err.ADDR
        elif d.op == Op.ACTIVATE:
            if d.f >= p.nslot:
                return Err.ARG
            if d.a >= p.ne:
                return Err.ADAPTER
        elif d.op == Op.LOAD_ADAPTER:
            if d.a >= p.ne:
                return Err.ADAPTER
        elif d.op == Op.DVFS_SET:
            if d.a >= p.nl:
                return Err.LEVEL
        elif d.op == Op.DVFS_POLICY:
            if d.a >= 1 << p.lb or d.b >= 1 << p.sb:
                return Err.ARG
            if self.policy[policy_index(p, d.a, d.b, d.f & 1)] >= p.nl:
                return Err.LEVEL
        elif d.op == Op.PREDICT_LEN:
            if d.a >= p.npb:
                return Err.ARG
        return Err.NONE

    def execute(self, d: Desc, beats_in: list[int] | None = None) -> tuple[int, list[int]]:
        """Run one descriptor; returns (T with an always-valid/ready stream, beats sent out)."""
        p = self.p
        code = self.check(d)
        if code:
            self.err, self.err_code, self.last_cycles = True, int(code), 1
            return 1, []
        out: list[int] = []
        vcur0, vt = self.vcur, 0
        if d.op == Op.LOAD:
            nb = p.beats(d.f)
            beats = list(beats_in or [])
            for i in range(d.d):
                self.buffers()[d.f][d.a + i] = beats_to_word(beats[i * nb:(i + 1) * nb])
        elif d.op == Op.STORE:
            for i in range(d.d):
                out += word_to_beats(self.buffers()[d.f][d.a + i], p.beats(d.f))
        elif d.op == Op.GEMV:
            self._gemv(d)
        elif d.op == Op.LORA:
            self._lora(d)
        elif d.op == Op.ROUTE:
            self._route(d)
        elif d.op == Op.ACTIVATE:
            self.slots[d.f] = d.a
        elif d.op == Op.LOAD_ADAPTER:
            beats = list(beats_in or [])
            for i in range(p.ew):
                self.envm[d.a * p.ew + i] = beats_to_word(beats[i * p.b_a:(i + 1) * p.b_a])
        elif d.op in (Op.DVFS_SET, Op.DVFS_POLICY):
            lvl = d.a if d.op == Op.DVFS_SET else self.policy[policy_index(p, d.a, d.b, d.f & 1)]
            vt, ft = self.vf[lvl]
            self.level, self.vcur, self.fcur, self.level_seen = lvl, vt, ft, lvl
        elif d.op == Op.PREDICT_LEN:
            self.len_pred = self.lenlut[self.task * p.npb + d.a]
        t = cycles(p, d, vcur=vcur0, vt=vt)
        self.last_cycles = t
        return t, out

    def _gemv(self, d: Desc) -> None:
        p = self.p
        int4, accf, kt, m = d.f & 1, (d.f >> 1) & 1, d.d, d.e
        nw = (kt + 1) // 2 if int4 else kt
        wwords = self.wbuf[d.b:d.b + nw]
        for i in range(m):
            xs = [unpack(self.abuf[d.a + i * kt + t], 8, p.n) for t in range(kt)]
            init = unpack(self.obuf[d.c + i], 32, p.n) if accf else None
            self.obuf[d.c + i] = pack(mac_gemv(p, xs, wwords, bool(int4), init), 32)

    def expert(self, e: int) -> tuple[list[list[int]], list[list[int]]]:
        return adapter_from_words(self.p, self.envm[e * self.p.ew:(e + 1) * self.p.ew])

    def _lora(self, d: Desc) -> None:
        p = self.p
        x = sum((unpack(self.abuf[d.a + t], 8, p.n) for t in range(p.kt)), [])
        used = [self.slots[s] for s in range(d.f)]
        y = lora_y(p, x, [self.expert(e) for e in used], [self.gates[e] for e in used], d.d & 31)
        for j in range(p.nt):     # tile by tile, as the RTL: read base j, then write output j
            base = unpack(self.obuf[d.b + j], 32, p.n)
            out = [sat(b + rshr(v, d.e & 31), 32) for b, v in zip(base, y[j * p.n:(j + 1) * p.n])]
            self.obuf[d.c + j] = pack(out, 32)

    def _route(self, d: Desc) -> None:
        p = self.p
        q = sum((unpack(self.abuf[d.a + t], 8, p.n) for t in range(p.et)), [])
        embs = [sum((unpack(self.emb[e * p.et + t], 8, p.n) for t in range(p.et)), [])
                for e in range(p.ne)]
        r = route(p, q, embs, d.e)
        self.gates, self.cos = list(r.gates), list(r.cos)
        self.route_info = (r.argmax, r.gates[r.argmax])
        self.task = r.argmax
