"""LLM workloads on the accelerator: model shape -> GEMM list -> command stream -> cycles and energy.

Mapping (docs/sim.md has the full rules):
- Every decoder layer is q/k/v/o projections, gate/up/down MLP projections (weights INT8 or packed
  INT4), and attention as two GEMMs per KV head whose "weights" are the INT8 KV cache: scores
  (M = tokens x query heads per KV head, N = context, K = head_dim) and context (N = head_dim,
  K = context). Prefill computes the full P x P score square (causal half wasted, simple). The LM
  head runs for the last token only. Norms, RoPE, softmax, SiLU and requantisation run on the host.
- GEMM (M, N, K) tiling for an N x N array: K in N-wide tiles, output features in N-row tiles.
  kc = K tiles per GEMV, at most ABUF depth, WBUF depth (2x for INT4) and 4095 (12-bit field); K
  beyond that is split into balanced chunks accumulated with the ACC flag (partials go back to the
  host and return with LOAD OBUF). A weight block is as many whole output tiles as WBUF holds; a
  token chunk is at most 255 (8-bit m field), ABUF/kc and OBUF/tiles-in-block tokens. Loop order:
  K chunk, weight block (one LOAD WBUF), token chunk (LOAD ABUF unless every token already sits in
  ABUF), one GEMV per output tile (a repeated tile class), one STORE of the block's INT32 outputs.
- Commands run back to back from a full queue: each costs T + 1 cycles (sim.machine), T from the
  spec formula with link stalls from sim.link. Identical commands are costed once per class and
  multiplied; GEMM costs are cached per shape, so a whole SmolLM2-135M token is a few dozen
  distinct GEMMs.
"""
from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import numpy as np

from clone.errors import CloneError
from clone.model.config import LayerShape, ModelConfig
from hw.params import AccelParams
from hw.reference import Buf, Desc, Op, dvfs_busy, vf_reset
from sim import actions as act
from sim.energy import CATEGORIES, EnergyModel, OperatingPoint, link_spec, point_table
from sim.link import StreamLink
from sim.machine import command_cost

MAX_D = 4095      # 12-bit descriptor fields
MAX_M = 255       # 8-bit token count


# ============================================================================ GEMM list
@dataclass(frozen=True)
class Gemm:
    """C (M x N) = A (M x K) . W^T (N x K); `count` identical instances (e.g. one per KV head)."""

    name: str
    m: int
    n: int
    k: int
    weight_bits: int = 8
    layer: int = -1          # decoder layer index, -1 for the LM head
    count: int = 1

    def __post_init__(self) -> None:
        for key in ("m", "n", "k", "count"):
            if int(getattr(self, key)) < 1:
                raise CloneError(f"GEMM {self.name}: {key} {getattr(self, key)} must be >= 1")
        if self.weight_bits not in (4, 8):
            raise CloneError(f"GEMM {self.name}: weight_bits {self.weight_bits} is not supported (allowed: 4, 8)")

    @property
    def macs(self) -> int:
        return self.m * self.n * self.k * self.count


def layer_gemms(cfg: ModelConfig, idx: int, shape: LayerShape, tokens: int, ctx: int, bits: int) -> list[Gemm]:
    """GEMMs of one decoder layer for `tokens` new tokens attending over `ctx` positions."""
    d, hd = cfg.dim, cfg.head_dim
    out: list[Gemm] = []
    if shape.n_heads:
        nh, nkv = shape.n_heads, shape.n_kv_heads
        g = nh // nkv
        out += [Gemm(f"L{idx}.q_proj", tokens, nh * hd, d, bits, idx),
                Gemm(f"L{idx}.k_proj", tokens, nkv * hd, d, bits, idx),
                Gemm(f"L{idx}.v_proj", tokens, nkv * hd, d, bits, idx),
                Gemm(f"L{idx}.attn_score", tokens * g, ctx, hd, 8, idx, nkv),
                Gemm(f"L{idx}.attn_context", tokens * g, hd, ctx, 8, idx, nkv),
                Gemm(f"L{idx}.o_proj", tokens, d, nh * hd, bits, idx)]
    if shape.ffn_dim:
        f = shape.ffn_dim
        out += [Gemm(f"L{idx}.gate_proj", tokens, f, d, bits, idx),
                Gemm(f"L{idx}.up_proj", tokens, f, d, bits, idx),
                Gemm(f"L{idx}.down_proj", tokens, d, f, bits, idx)]
    return out


def model_gemms(cfg: ModelConfig, tokens: int, ctx: int, bits: int = 8, head_bits: int = 8,
                head: bool = True) -> list[Gemm]:
    """One forward pass: every layer, then the LM head for the last token."""
    out: list[Gemm] = []
    for i, shape in enumerate(cfg.layers):
        out += layer_gemms(cfg, i, shape, tokens, ctx, bits)
    if head:
        out.append(Gemm("lm_head", 1, cfg.vocab_size, cfg.dim, head_bits, -1))
    return out


def write_topology(gemms: list[Gemm], path: str | os.PathLike | None = None,
                   trailing_comma: bool = False) -> str:
    """SCALE-Sim-style GEMM topology CSV: `Layer,M,N,K` (instances of a counted GEMM expanded).
    trailing_comma=True writes SCALE-Sim's own variant (its reader drops the last field)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    end = [""] if trailing_comma else []
    w.writerow(["Layer", "M", "N", "K"] + end)
    for g in gemms:
        for i in range(g.count):
            w.writerow([g.name if g.count == 1 else f"{g.name}.{i}", g.m, g.n, g.k] + end)
    text = buf.getvalue()
    if path is not None:
        target = Path(path)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(text)
        tmp.replace(target)
    return text


def read_topology(path: str | os.PathLike, weight_bits: int = 8) -> list[Gemm]:
    """Read `Layer,M,N,K` rows (SCALE-Sim's trailing commas and spaces allowed)."""
    file = Path(path)
    try:
        rows = list(csv.reader(file.read_text().splitlines()))
    except OSError as exc:
        raise CloneError(f"{file}: cannot read ({exc.strerror})") from None
    rows = [[c.strip() for c in r if c.strip()] for r in rows if any(c.strip() for c in r)]
    if not rows or [c.lower() for c in rows[0][:4]] != ["layer", "m", "n", "k"]:
        raise CloneError(f"{file}: header must be Layer,M,N,K")
    out = []
    for i, r in enumerate(rows[1:], start=2):
        try:
            m, n, k = (int(v) for v in r[1:4])
        except (ValueError, IndexError):
            raise CloneError(f"{file}: line {i}: M, N, K must be integers, got {r[1:4]}") from None
        out.append(Gemm(r[0], m, n, k, weight_bits))
    return out


# ============================================================================ tiling
@dataclass(frozen=True)
class Cmd:
    """`repeat` commands: desc, then b += db and c += dc for each repetition (one tile class)."""

    desc: Desc
    repeat: int = 1
    db: int = 0
    dc: int = 0

    def expand(self) -> Iterator[Desc]:
        d = self.desc
        for i in range(self.repeat):
            yield Desc(d.op, d.f, d.a, d.b + i * self.db, d.c + i * self.dc, d.d, d.e)


@dataclass(frozen=True)
class Tiling:
    kc: list[int]            # K tiles per chunk
    tiles: int               # output tiles
    block: list[int]         # output tiles per weight block, per K chunk
    mc: list[int]            # tokens per chunk, per K chunk


def plan(p: AccelParams, m: int, n_out: int, k: int, bits: int) -> Tiling:
    n = p.n
    if min(p.abuf_depth, p.wbuf_depth, p.obuf_depth) < 1:
        raise CloneError("buffers: every buffer needs at least one word (abuf, wbuf, obuf depth >= 1)")
    kt_tot, tiles = -(-k // n), -(-n_out // n)
    wmul = 2 if bits == 4 else 1
    kc_max = min(p.abuf_depth, wmul * p.wbuf_depth, MAX_D)
    nk = -(-kt_tot // kc_max)
    base, extra = divmod(kt_tot, nk)
    kcs = [base + (1 if i < extra else 0) for i in range(nk)]
    blocks, mcs = [], []
    for kc in kcs:
        wt = -(-kc // wmul)
        mc = min(m, MAX_M, p.abuf_depth // kc, p.obuf_depth)
        tb = min(tiles, p.wbuf_depth // wt, p.obuf_depth // mc, MAX_D // mc)
        if mc < 1 or tb < 1:
            raise CloneError(f"GEMM {m}x{n_out}x{k}: does not fit the buffers (abuf {p.abuf_depth}, "
                             f"wbuf {p.wbuf_depth}, obuf {p.obuf_depth} words)")
        blocks.append(tb)
        mcs.append(mc)
    return Tiling(kcs, tiles, blocks, mcs)


def gemm_commands(p: AccelParams, m: int, n_out: int, k: int, bits: int) -> Iterator[Cmd]:
    """The command stream of one GEMM instance (module docstring: loop order and layout)."""
    tl = plan(p, m, n_out, k, bits)
    wmul = 2 if bits == 4 else 1
    int4 = 1 if bits == 4 else 0
    for ci, (kc, tb, mc) in enumerate(zip(tl.kc, tl.block, tl.mc)):
        wt = -(-kc // wmul)
        resident = m * kc <= p.abuf_depth
        if resident:
            yield from _load(Buf.ABUF, m * kc)
        for t0 in range(0, tl.tiles, tb):
            nb = min(tb, tl.tiles - t0)
            yield from _load(Buf.WBUF, nb * wt)
            for m0 in range(0, m, mc):
                mm = min(mc, m - m0)
                a = m0 * kc if resident else 0
                if not resident:
                    yield from _load(Buf.ABUF, mm * kc)
                if ci > 0:
                    yield from _load(Buf.OBUF, nb * mm)
                f = int4 | (2 if ci > 0 else 0)
                yield Cmd(Desc(Op.GEMV, f=f, a=a, b=0, c=0, d=kc, e=mm), nb, wt, mm)
                yield from _store(Buf.OBUF, nb * mm)


def _load(buf: int, words: int) -> Iterator[Cmd]:
    for a in range(0, words, MAX_D):
        yield Cmd(Desc(Op.LOAD, f=buf, a=a, d=min(MAX_D, words - a)))


def _store(buf: int, words: int) -> Iterator[Cmd]:
    for a in range(0, words, MAX_D):
        yield Cmd(Desc(Op.STORE, f=buf, a=a, d=min(MAX_D, words - a)))


def lora_commands(p: AccelParams, tokens: int, slots: int) -> Iterator[Cmd]:
    """LoRA on one D_in = KT*N -> D_out = NT*N projection: per token, x and the base output come
    back from the host (LOAD ABUF, LOAD OBUF), LORA, STORE of the adapted output."""
    for _ in range(tokens):
        yield Cmd(Desc(Op.LOAD, f=Buf.ABUF, a=0, d=p.kt))
        yield Cmd(Desc(Op.LOAD, f=Buf.OBUF, a=0, d=p.nt))
        yield Cmd(Desc(Op.LORA, f=slots, a=0, b=0, c=p.nt, d=0, e=0))
        yield Cmd(Desc(Op.STORE, f=Buf.OBUF, a=p.nt, d=p.nt))


# ============================================================================ costing
@dataclass
class Cost:
    """Cycles and action counts of a command sequence (commands back to back from a full queue)."""

    cycles: int = 0
    commands: int = 0
    actions: np.ndarray = field(default_factory=act.zeros)

    def __iadd__(self, other: "Cost") -> "Cost":
        self.cycles += other.cycles
        self.commands += other.commands
        self.actions = self.actions + other.actions
        return self

    def scaled(self, k: int) -> "Cost":
        return Cost(self.cycles * k, self.commands * k, self.actions * k)


class Mapper:
    """Costs commands and GEMMs for one accelerator instance and link, with per-shape caches."""

    def __init__(self, p: AccelParams, link: StreamLink):
        self.p, self.link = p, link
        self._cmd: dict[Desc, tuple[int, np.ndarray]] = {}
        self._gemm: dict[tuple, Cost] = {}
        from hw.reference import AccelModel
        self._checker = AccelModel(p)       # decode checks only (no state changes)

    def command(self, d: Desc, vcur: int = 0, vt: int = 0) -> tuple[int, np.ndarray]:
        key = Desc(d.op, d.f, 0, 0, 0, d.d, d.e) if d.op != Op.DVFS_SET else d
        hit = self._cmd.get(key)
        if hit is None:
            code = self._checker.check(d) if d.op != Op.DVFS_SET else 0
            if code:
                raise CloneError(f"command {d}: the accelerator would reject it (error code {int(code)})")
            t, _, a = command_cost(self.p, d, self.link, vcur, vt)
            hit = self._cmd[key] = (t, a)
        return hit

    def run(self, cmds) -> Cost:
        cost = Cost()
        for c in cmds:
            t, a = self.command(c.desc)
            cost.cycles += (t + 1) * c.repeat
            cost.commands += c.repeat
            cost.actions = cost.actions + a * c.repeat
        return cost

    def gemm(self, g: Gemm) -> Cost:
        key = (g.m, g.n, g.k, g.weight_bits)
        hit = self._gemm.get(key)
        if hit is None:
            hit = self._gemm[key] = self.run(gemm_commands(self.p, g.m, g.n, g.k, g.weight_bits))
        return hit.scaled(g.count)


# ============================================================================ reports
@dataclass
class PhaseReport:
    phase: str
    cycles: int
    time_s: float
    energy_J: dict[str, float]
    macs: int
    link_bytes: int
    commands: int
    layers: list[dict] = field(default_factory=list)     # per decoder layer (and lm_head)

    @property
    def total_J(self) -> float:
        return sum(self.energy_J.values())


@dataclass
class SimReport:
    model: str
    params: AccelParams
    point: OperatingPoint
    weight_bits: int
    prompt_len: int
    gen_len: int
    prefill: PhaseReport
    decode: PhaseReport          # gen_len - 1 decode steps
    decode_first_s: float
    decode_last_s: float

    @property
    def decode_steps(self) -> int:
        return self.gen_len - 1

    @property
    def energy_per_token_J(self) -> float:
        """Decode energy per generated token (mean over the decode steps)."""
        return self.decode.total_J / max(self.decode_steps, 1)

    def summary(self) -> dict:
        pf, dc = self.prefill, self.decode
        steps = max(self.decode_steps, 1)
        row = {"model": self.model, "array": f"{self.params.n}x{self.params.n}", "bits": self.weight_bits,
               "point": self.point.name, "V": self.point.voltage_V, "f_MHz": self.point.freq_MHz,
               "prefill_cycles": pf.cycles, "ttft_ms": pf.time_s * 1e3,
               "decode_cycles_per_token": dc.cycles / steps, "tpot_ms": dc.time_s / steps * 1e3,
               "prefill_mJ": pf.total_J * 1e3, "decode_mJ_per_token": dc.total_J / steps * 1e3}
        for c in CATEGORIES:
            row[f"tok_{c}_mJ"] = dc.energy_J[c] / steps * 1e3
        return row


def _phase(name: str, costs: dict[int, Cost], mapper_point: OperatingPoint, em: EnergyModel,
           extra: Cost | None = None) -> PhaseReport:
    f_hz = mapper_point.freq_MHz * 1e6
    total = Cost()
    layers = []
    for idx in sorted(costs, key=lambda i: (i < 0, i)):
        c = costs[idx]
        total += c
        t = c.cycles / f_hz
        e = em.split_J(c.actions, t, mapper_point)
        layers.append({"layer": "lm_head" if idx == -1 else f"L{idx}", "cycles": c.cycles, "time_s": t,
                       "energy_J": sum(e.values()), **{f"{k}_J": v for k, v in e.items()},
                       "macs": _macs(c.actions), "link_bytes": _link(c.actions), "commands": c.commands})
    if extra is not None:
        total += extra
    t = total.cycles / f_hz
    return PhaseReport(name, total.cycles, t, em.split_J(total.actions, t, mapper_point),
                       _macs(total.actions), _link(total.actions), total.commands, layers)


def _macs(a: np.ndarray) -> int:
    return int(a[act.INDEX["mac_int8"]] + a[act.INDEX["mac_int4"]] + a[act.INDEX["mac_lora_b"]])


def _link(a: np.ndarray) -> int:
    return int(a[act.INDEX["link_in_B"]] + a[act.INDEX["link_out_B"]])


def pass_cost(mapper: Mapper, cfg: ModelConfig, tokens: int, ctx: int, bits: int, head_bits: int,
              lora_slots: int = 0) -> dict[int, Cost]:
    """Per-layer cost of one forward pass (layers with equal shapes are costed once)."""
    p = mapper.p
    by_shape: dict[LayerShape, Cost] = {}
    out: dict[int, Cost] = {}
    for i, shape in enumerate(cfg.layers):
        if shape not in by_shape:
            c = Cost()
            for g in layer_gemms(cfg, i, shape, tokens, ctx, bits):
                c += mapper.gemm(g)
            if lora_slots and shape.n_heads * cfg.head_dim == p.kt * p.n and cfg.dim == p.nt * p.n:
                c += mapper.run(lora_commands(p, tokens, lora_slots))
            by_shape[shape] = c
        out[i] = by_shape[shape]
    out[-1] = mapper.gemm(Gemm("lm_head", 1, cfg.vocab_size, cfg.dim, head_bits, -1))
    return out


def simulate(cfg: ModelConfig, prompt_len: int, gen_len: int, *, params: AccelParams | None = None,
             point: OperatingPoint | str | None = None, weight_bits: int = 8, head_bits: int | None = None,
             lora_slots: int = 0, link: StreamLink | None = None, model_name: str = "") -> SimReport:
    """Prefill of prompt_len tokens (first output token) and gen_len - 1 decode steps."""
    p = params or AccelParams.asic28()
    if prompt_len < 1 or gen_len < 1:
        raise CloneError(f"workload: prompt_len {prompt_len} and gen_len {gen_len} must be >= 1")
    if weight_bits not in (4, 8):
        raise CloneError(f"weight bits {weight_bits} not supported (allowed: 4, 8)")
    if lora_slots < 0 or lora_slots > p.nslot:
        raise CloneError(f"lora_slots {lora_slots} not allowed (allowed: 0..{p.nslot})")
    if lora_slots and cfg.dim != p.nt * p.n:
        raise CloneError(f"model dim {cfg.dim}: the LoRA path needs dim = NT*N = {p.nt * p.n} "
                         "(layers whose attention width differs from KT*N run without LoRA)")
    head_bits = weight_bits if head_bits is None else head_bits
    table = point_table()
    pt = point if isinstance(point, OperatingPoint) else table.get(point)
    lk = link or default_link(pt)
    mapper = _mapper(p, lk)
    em = _energy_model(p)
    # prefill: DVFS to the point (from the reset level), ROUTE + ACTIVATE for LoRA, the pass
    setup = Cost()
    v_reset, v_target = vf_reset(p)[0][0], round(pt.voltage_V * 100)
    t_dvfs = 1 + dvfs_busy(p, v_reset, v_target)
    setup += Cost(t_dvfs + 1, 1, act.vector(command=1, cycle=t_dvfs + 1, pll_relock=1,
                                            ldo_step=abs(v_target - v_reset)))
    if lora_slots:
        setup += mapper.run([Cmd(Desc(Op.LOAD, f=Buf.ABUF, a=0, d=p.et)), Cmd(Desc(Op.ROUTE, a=0, e=16)),
                             Cmd(Desc(Op.ACTIVATE, f=0, a=0), lora_slots)])
    pre = pass_cost(mapper, cfg, prompt_len, prompt_len, weight_bits, head_bits, lora_slots)
    prefill = _phase("prefill", pre, pt, em, setup)
    # decode steps: context prompt_len + 1 .. prompt_len + gen_len - 1
    steps: dict[int, Cost] = {}
    first = last = 0.0
    for s in range(1, gen_len):
        step = pass_cost(mapper, cfg, 1, prompt_len + s, weight_bits, head_bits, lora_slots)
        cyc = 0
        for i, c in step.items():
            steps.setdefault(i, Cost())
            steps[i] += c
            cyc += c.cycles
        if s == 1:
            first = cyc / (pt.freq_MHz * 1e6)
        last = cyc / (pt.freq_MHz * 1e6)
    decode = _phase("decode", steps, pt, em)
    return SimReport(model_name or cfg.name, p, pt, weight_bits, prompt_len, gen_len, prefill, decode,
                     first, last)


def default_link(point: OperatingPoint) -> StreamLink:
    spec = link_spec()
    return StreamLink.from_bandwidth(spec.bandwidth_GBps, spec.latency_ns, point.freq_MHz)


_MAPPERS: dict[tuple, Mapper] = {}


def _mapper(p: AccelParams, link: StreamLink) -> Mapper:
    key = (p, link)
    if key not in _MAPPERS:
        if len(_MAPPERS) > 64:
            _MAPPERS.clear()
        _MAPPERS[key] = Mapper(p, link)
    return _MAPPERS[key]


@lru_cache(maxsize=16)
def _energy_model(p: AccelParams) -> EnergyModel:
    return EnergyModel(p)


# ============================================================================ models and arrays
def resolve_model(model: str | os.PathLike | ModelConfig) -> ModelConfig:
    """A ModelConfig from a config, a built-in name, a clone/HF model directory or a GGUF file,
    without loading weights (the built-in model's cached config.json, else GGUF metadata)."""
    if isinstance(model, ModelConfig):
        return model
    text = str(model)
    path = Path(text)
    if path.is_dir():
        cfg_file = path / "config.json"
        try:
            raw = json.loads(cfg_file.read_text())
        except (OSError, ValueError) as exc:
            raise CloneError(f"{cfg_file}: not a model directory config ({exc})") from None
        if "clone_format" in raw:
            return ModelConfig.from_dict(raw["model"])
        from clone.model.hf_loader import config_from_hf
        return config_from_hf(raw, cfg_file)
    if path.is_file() and path.suffix.lower() == ".gguf":
        return _gguf_config(path)
    from clone.data.paths import data_dir
    cached = sorted((data_dir() / "models").glob(f"{text}-*/config.json"), key=lambda f: f.stat().st_mtime)
    if cached:
        cfg = ModelConfig.from_dict(json.loads(cached[-1].read_text())["model"])
        cfg.name = cfg.name or text
        return cfg
    from clone.model.checkpoint import resolve
    gguf_path, kind = resolve(text)
    if kind not in ("builtin-gguf", "gguf"):
        raise CloneError(f"{text}: not a model name, directory or .gguf file")
    return _gguf_config(gguf_path)


def _gguf_config(path: Path) -> ModelConfig:
    from clone.model.gguf_loader import _fields, _open, config_from_gguf
    reader = _open(path)
    cfg = config_from_gguf(_fields(reader), path)
    cfg.tie_embeddings = not any(t.name == "output.weight" for t in reader.tensors)
    return cfg


ALLOWED_N = (4, 8, 12, 16, 20, 24, 28, 32, 48, 64)


def accel_params(array: str | None = None, buffers_KiB: dict[str, float] | None = None,
                 base: AccelParams | None = None) -> AccelParams:
    """asic28 with another N x N array and/or buffer sizes in KiB (depths follow the word widths)."""
    p = base or AccelParams.asic28()
    n = p.n
    if array:
        try:
            r, c = (int(v) for v in str(array).lower().split("x"))
        except ValueError:
            raise CloneError(f"--array {array!r}: expected RxC such as 16x16") from None
        if r != c or r not in ALLOWED_N:
            raise CloneError(f"--array {array}: not allowed (allowed: square N x N with N in "
                             f"{', '.join(map(str, ALLOWED_N))})")
        n = r
    sizes = {"abuf": p.abuf_depth * p.n / 1024, "wbuf": p.wbuf_depth * p.n * p.n / 1024,
             "obuf": p.obuf_depth * 4 * p.n / 1024}
    for k, v in (buffers_KiB or {}).items():
        if k not in sizes:
            raise CloneError(f"--buffers: unknown buffer {k!r} (allowed: abuf, wbuf, obuf)")
        if not v > 0:
            raise CloneError(f"--buffers: {k}={v} KiB must be > 0")
        sizes[k] = float(v)
    word = {"abuf": n, "wbuf": n * n, "obuf": 4 * n}
    depth = {}
    for k, kib in sizes.items():
        words = kib * 1024 / word[k]
        if abs(words - round(words)) > 1e-9 or not 1 <= round(words) <= 4096:
            raise CloneError(f"--buffers: {k}={kib:g} KiB is {words:g} words of {word[k]} B with a "
                             f"{n}x{n} array (allowed: a whole number of words, 1..4096: 12-bit addresses)")
        depth[k] = int(round(words))
    e_dim, d_lora = p.et * p.n, p.kt * p.n
    if d_lora % n or e_dim % n:
        raise CloneError(f"--array {n}x{n}: the LoRA width {d_lora} and router embedding {e_dim} must "
                         f"be multiples of N")
    try:
        return p.with_(n=n, abuf_depth=depth["abuf"], wbuf_depth=depth["wbuf"], obuf_depth=depth["obuf"],
                       kt=d_lora // n, nt=(p.nt * p.n) // n, et=e_dim // n)
    except ValueError as exc:
        raise CloneError(f"--array/--buffers: {exc}") from None


def run_topology(gemms: list[Gemm], *, params: AccelParams | None = None,
                 point: OperatingPoint | str | None = None, link: StreamLink | None = None) -> list[dict]:
    """Cycles, time and energy per GEMM of a topology (each instance costed on its own)."""
    p = params or AccelParams.asic28()
    pt = point if isinstance(point, OperatingPoint) else point_table().get(point)
    mapper = _mapper(p, link or default_link(pt))
    em = _energy_model(p)
    rows = []
    for g in gemms:
        c = mapper.gemm(g)
        t = c.cycles / (pt.freq_MHz * 1e6)
        e = em.split_J(c.actions, t, pt)
        rows.append({"layer": g.name, "M": g.m, "N": g.n, "K": g.k, "bits": g.weight_bits, "cycles": c.cycles,
                     "time_s": t, "energy_J": sum(e.values()), **{f"{k}_J": v for k, v in e.items()},
                     "macs": _macs(c.actions), "link_bytes": _link(c.actions), "commands": c.commands})
    return rows
