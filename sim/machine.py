"""Cycle-level model of the whole accelerator executing 64-bit command descriptors.

`Accelerator` is hw.reference.AccelModel (the spec's architectural state, decode checks, router,
SFU, buffers: one piece of code with the RTL's scoreboard) plus what the RTL shows around it:
the descriptor queue and its pop cycle, the free-running cycle counter, LAST_CYCLES / CMD_COUNT /
ERR_INFO, stream stalls from a host-link model (sim/link.py), the AXI4-Lite register map, and per
command action counts for the energy model. GEMV and LORA arithmetic run through the numpy forms
in sim/fastmath.py (bit-identical to the reference, tested).

Timing (docs/hw-spec.md section 6): a command popped in IDLE cycle t runs its DECODE cycle at t+1
and its L busy cycles after it, T = 1 + L; the sequencer is idle again at t + T + 1. `command_cost`
gives T and the action counts from the descriptor fields alone (no data), which is what the
workload mapper uses to cost whole LLMs per tile class.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from hw.params import AccelParams
from hw.reference import ID_VALUE, AccelModel, Buf, Desc, Err, Op, access_counts, cycles, policy_index
from sim import actions as act
from sim import fastmath as fm
from sim.link import StreamLink, load_stall, store_stall

_BUF_WR = ("abuf_wr", "wbuf_wr", "obuf_wr", "emb_wr")


@dataclass
class CommandRecord:
    """One finished (or rejected) command: when it was popped, T, stall cycles, error code."""

    desc: Desc
    pop_cycle: int
    t: int
    stall: int
    err: int
    actions: np.ndarray


def stream_stall(p: AccelParams, d: Desc, link: StreamLink) -> int:
    if d.op == Op.LOAD:
        return _load_stall(link, d.d, p.beats(d.f), 0)
    if d.op == Op.STORE:
        return _store_stall(link, d.d, p.beats(d.f))
    if d.op == Op.LOAD_ADAPTER:
        return _load_stall(link, p.ew, p.b_a, p.t_w)
    return 0


_load_stall = lru_cache(maxsize=4096)(load_stall)
_store_stall = lru_cache(maxsize=4096)(store_stall)


def command_actions(p: AccelParams, d: Desc, t: int, vcur: int = 0, vt: int = 0) -> np.ndarray:
    """Action counts of an accepted command of T = t cycles (plus its IDLE pop cycle): the memory
    accesses, MACs and stream beats of hw.reference.access_counts (the RTL schedules), split by
    precision and buffer, plus what only the energy model needs (divider steps, LDO steps, PLL
    relocks, commands, clocked cycles)."""
    ac = access_counts(p, d)
    c: dict[str, int] = {"command": 1, "cycle": t + 1, "link_in_B": 4 * ac["beats_in"],
                         "link_out_B": 4 * ac["beats_out"], "envm_rd": ac["envm_rd"], "envm_wr": ac["envm_wr"],
                         "abuf_rd": ac["abuf_rd"], "wbuf_rd": ac["wbuf_rd"], "obuf_rd": ac["obuf_rd"],
                         "obuf_wr": ac["obuf_wr"], "emb_rd": ac["emb_rd"]}
    if d.op == Op.LOAD:
        c[_BUF_WR[d.f]] = ac["buf_wr"]
    macs = ac["macs"]
    if d.op == Op.GEMV and d.f & 1:
        c["mac_int4"] = macs
    elif d.op == Op.LORA:
        c["mac_lora_b"] = p.nt * d.f * p.rk * p.n          # the B pass multiplies INT16 by INT8
        c["mac_int8"] = macs - c["mac_lora_b"]
    else:
        c["mac_int8"] = macs
    if d.op == Op.ROUTE:
        c["iter_step"] = p.sq + p.ne * (p.sq + p.dw) + p.ne * p.dw
    elif d.op in (Op.DVFS_SET, Op.DVFS_POLICY):
        c.update(ldo_step=abs(vt - vcur), pll_relock=1)
    return act.vector(**c)


def command_cost(p: AccelParams, d: Desc, link: StreamLink, vcur: int = 0,
                 vt: int = 0) -> tuple[int, int, np.ndarray]:
    """(T, stall, actions) of an accepted command from its fields alone."""
    stall = stream_stall(p, d, link)
    t = cycles(p, d, vcur=vcur, vt=vt, stall=stall)
    return t, stall, command_actions(p, d, t, vcur, vt)


def rejected_actions() -> np.ndarray:
    return act.vector(command=1, cycle=2)


class Accelerator(AccelModel):
    """The accelerator as the host sees it: push descriptors (with their stream data), read
    registers, get output beats, cycle counts and action counts."""

    def __init__(self, p: AccelParams | None = None, link: StreamLink | None = None,
                 out_link: StreamLink | None = None):
        super().__init__(p or AccelParams.small())
        self._costs: dict[tuple, tuple[int, int, np.ndarray]] = {}   # per command class
        self._link = link or StreamLink.ideal()
        self._out_link = out_link or self._link
        self.now = 0                   # first cycle in which the sequencer is idle again
        self.cmd_count = 0
        self.err_op = 0
        self.err_count = 0
        self.queue: deque[tuple[int, int, list[int] | None]] = deque()   # (visible, word, beats)
        self.log: list[CommandRecord] = []
        self.totals = act.zeros()
        self.out_beats: list[tuple[int, int]] = []      # (data, last) as sent on m_axis

    @property
    def link(self) -> StreamLink:
        return self._link

    @link.setter
    def link(self, value: StreamLink) -> None:
        self._link, self._costs = value, {}

    @property
    def out_link(self) -> StreamLink:
        return self._out_link

    @out_link.setter
    def out_link(self, value: StreamLink) -> None:
        self._out_link, self._costs = value, {}

    # ------------------------------------------------------------------ host side
    def push(self, desc: Desc | int, beats_in: list[int] | None = None, at: int | None = None) -> int:
        """DESC_HI write whose AW/W handshake is in cycle `at` (docs/hw-spec.md 6, host-side
        latencies: the queue is written at the end of cycle at+1, an idle sequencer pops the entry
        in at+2). Default: a host that keeps the queue full (the entry is there when needed).
        Returns the error code of the push (E_QFULL if the queue is full in cycle at+1, else 0)."""
        word = desc.encode() if isinstance(desc, Desc) else int(desc)
        if at is None:
            while len(self.queue) >= self.p.qdepth:
                self._step()
            visible = self.now if not self.queue else self.queue[-1][0]
        else:
            wcycle = at + 1
            while self.queue and self._pop_cycle() < wcycle:
                self._step()
            if len(self.queue) >= self.p.qdepth:
                self.err, self.err_code = True, int(Err.QFULL)
                self.err_op, self.err_count = word & 0xF, self.err_count + 1
                return int(Err.QFULL)
            visible = wcycle + 1
        self.queue.append((visible, word, beats_in))
        return 0

    def run(self, stream, beats: dict[int, list[int]] | None = None) -> list[CommandRecord]:
        """Execute descriptors back to back from a full queue; beats maps stream index -> input
        beats of that command. Returns the records of these commands."""
        start = len(self.log)
        for i, desc in enumerate(stream):
            self.push(desc, (beats or {}).get(i))
        self.drain()
        return self.log[start:]

    def drain(self) -> None:
        while self.queue:
            self._step()

    def _pop_cycle(self) -> int:
        return max(self.now, self.queue[0][0])

    def _step(self) -> None:
        pop = self._pop_cycle()
        _, word, beats = self.queue.popleft()
        rec = self.execute_word(word, beats, pop)
        self.now = pop + rec.t + 1

    # ------------------------------------------------------------------ one command
    def execute_word(self, word: int, beats_in: list[int] | None = None, pop: int | None = None) -> CommandRecord:
        d = Desc.decode(word)
        pop = self.now if pop is None else pop
        code = int(self.check(d))
        if code:
            self.err, self.err_code, self.last_cycles = True, code, 1
            self.err_op, self.err_count = d.op & 0xF, self.err_count + 1
            rec = CommandRecord(d, pop, 1, 0, code, rejected_actions())
        else:
            vcur0 = self.vcur
            vt = self._target_vcode(d)
            if d.op in (Op.LOAD, Op.LOAD_ADAPTER) and beats_in is not None:
                out = self._load_words(d, beats_in)
            else:
                _, out = AccelModel.execute(self, d, beats_in)
            key = (d.op, d.f, d.d, d.e, vcur0, vt) if d.op != Op.LORA else (d.op, d.f)
            hit = self._costs.get(key)
            if hit is None:
                link = self.link if d.op != Op.STORE else self.out_link
                hit = self._costs[key] = command_cost(self.p, d, link, vcur0, vt)
            t, stall, a = hit
            self.last_cycles = t
            if out:
                self.out_beats += [(b, int(i == len(out) - 1)) for i, b in enumerate(out)]
            rec = CommandRecord(d, pop, t, stall, 0, a)
        self.cmd_count += 1
        self.totals += rec.actions
        self.log.append(rec)
        return rec

    def execute(self, d: Desc, beats_in: list[int] | None = None) -> tuple[int, list[int]]:
        """AccelModel-compatible single command (with this model's link stalls)."""
        n0 = len(self.out_beats)
        rec = self.execute_word(d.encode(), beats_in)
        self.now += rec.t + 1
        return rec.t, [b for b, _ in self.out_beats[n0:]]

    def _load_words(self, d: Desc, beats: list[int]) -> list[int]:
        """LOAD / LOAD_ADAPTER data movement as AccelModel.execute does it (beats little endian
        into words, 32-bit masked), with one numpy conversion instead of a loop per beat."""
        p = self.p
        if d.op == Op.LOAD:
            nb, words, dest, base = p.beats(d.f), d.d, self.buffers()[d.f], d.a
        else:
            nb, words, dest, base = p.b_a, p.ew, self.envm, d.a * p.ew
        need = words * nb
        vals = np.zeros(need, dtype=np.int64)
        got = np.asarray(beats[:need], dtype=np.int64)
        vals[:len(got)] = got
        raw = (vals & 0xFFFFFFFF).astype("<u4").tobytes()
        wb = 4 * nb
        dest[base:base + words] = [int.from_bytes(raw[i * wb:(i + 1) * wb], "little") for i in range(words)]
        return []

    def _target_vcode(self, d: Desc) -> int:
        if d.op == Op.DVFS_SET:
            return self.vf[d.a][0]
        if d.op == Op.DVFS_POLICY:
            return self.vf[self.policy[policy_index(self.p, d.a, d.b, d.f & 1)]][0]
        return 0

    # ------------------------------------------------------------------ numpy arithmetic
    def _gemv(self, d: Desc) -> None:
        p = self.p
        int4, accf, kt, m = bool(d.f & 1), bool(d.f & 2), d.d, d.e
        nw = (kt + 1) // 2 if int4 else kt
        init = fm.words_to_lanes(self.obuf[d.c:d.c + m], 4 * p.n, bits=32) if accf else None
        res = fm.gemv(p.n, self.abuf[d.a:d.a + m * kt], self.wbuf[d.b:d.b + nw], kt, m, int4, init)
        for i in range(m):
            self.obuf[d.c + i] = fm.lanes_to_word(res[i], 32)

    def _lora(self, d: Desc) -> None:
        p = self.p
        n, rk = p.n, p.rk
        used = [self.slots[s] for s in range(d.f)]
        x = fm.words_to_lanes(self.abuf[d.a:d.a + p.kt], n).reshape(-1)
        a_rows, b_cols = [], []
        for e in used:
            words = self.envm[e * p.ew:(e + 1) * p.ew]
            a_rows.append(fm.words_to_lanes(words[:rk * p.kt], n).reshape(rk, p.kt * n))
            bt = fm.words_to_lanes(words[rk * p.kt:], n).reshape(rk, p.nt * n)   # B^T rows
            b_cols.append(bt.T)
        gates = np.array([self.gates[e] for e in used], dtype=np.int64)
        hs = fm.lora_hs(np.stack(a_rows), x, gates, d.d & 31)
        y = fm.lora_y(np.stack(b_cols), hs)
        for j in range(p.nt):           # tile order: base tile j is read, then output tile j written
            base = fm.words_to_lanes([self.obuf[d.b + j]], 4 * n, bits=32).reshape(-1)
            self.obuf[d.c + j] = fm.lanes_to_word(fm.lora_out(base, y[j * n:(j + 1) * n], d.e & 31), 32)

    # ------------------------------------------------------------------ AXI4-Lite view
    def status(self) -> int:
        busy = int(bool(self.queue))
        return (busy | int(self.err) << 1 | (self.err_code & 0xF) << 4 | (len(self.queue) & 0xFF) << 8
                | int(len(self.queue) >= self.p.qdepth) << 16 | 1 << 17 | 1 << 18)

    def read(self, addr: int) -> int:
        """Register read as over AXI4-Lite once the accelerator is idle (settled, locked)."""
        p = self.p
        page = addr >> 8
        if page > 3:
            return 0
        regs: dict[int, int] = {
            0x000: ID_VALUE, 0x008: self.status(),
            0x00C: (self.err_code & 0xF) | (self.err_op & 0xF) << 4 | (self.err_count & 0xFFFF) << 16,
            0x010: self.now & 0xFFFFFFFF, 0x014: self.last_cycles, 0x018: self.cmd_count,
            0x028: p.n | (p.ne - 1) << 8 | (p.rk - 1) << 12 | (p.nslot - 1) << 16 | (p.nl - 1) << 20,
            0x180: self.route_info[0] | (self.route_info[1] & 0xFFFF) << 16,
            0x184: self.level_seen, 0x200: self.level, 0x204: self.vcur, 0x208: self.fcur,
            0x20C: 3, 0x210: self.len_pred, 0x214: self.task,
        }
        for e in range(p.ne):
            regs[0x100 + 4 * e] = self.gates[e] & 0xFFFF
            regs[0x1C0 + 4 * e] = self.cos[e] & 0xFFFF
        for s in range(p.nslot):
            regs[0x140 + 4 * s] = self.slots[s]
        for l, (v, f) in enumerate(self.vf):
            regs[0x240 + 4 * l] = v | f << 8
        for i, v in enumerate(self.lenlut):
            regs[0x280 + 4 * i] = v
        for i, v in enumerate(self.policy):
            regs[0x300 + 4 * i] = v
        return regs.get(addr, 0)

    def write(self, addr: int, data: int) -> None:
        p = self.p
        if addr == 0x004 and data & 1:
            self.err, self.err_code = False, 0
        elif 0x100 <= addr < 0x100 + 4 * p.ne:
            self.gates[(addr - 0x100) // 4] = data & 0xFFFF
        elif 0x240 <= addr < 0x240 + 4 * p.nl:
            self.vf[(addr - 0x240) // 4] = (data & 0xFF, (data >> 8) & 0xFF)
        elif 0x280 <= addr < 0x280 + 4 * p.nlen:
            self.lenlut[(addr - 0x280) // 4] = data & 0xFFFF
        elif 0x300 <= addr < 0x300 + 4 * p.npol:
            self.policy[(addr - 0x300) // 4] = data & 0xFF

    def buffer(self, buf: Buf | int) -> list[int]:
        return self.buffers()[int(buf)]
