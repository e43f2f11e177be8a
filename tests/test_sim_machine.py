"""sim.machine against hw/reference.py: same outputs bit for bit, cycle counts equal to the spec
formulas, link stalls as the max-plus recurrence, queue timing and register view."""
from __future__ import annotations

import random
from fractions import Fraction

import numpy as np
import pytest

from hw.params import AccelParams
from hw.reference import (AccelModel, Buf, Desc, Err, Op, cycles, lora_path, mac_gemv, pack,
                          unpack)
from sim import fastmath as fm
from sim.link import StreamLink, load_stall, store_stall
from sim.machine import Accelerator, command_cost
from sim.randstream import policy_setup, random_stream

STATE = ("abuf", "wbuf", "obuf", "emb", "envm", "gates", "slots", "cos", "route_info", "level",
         "vcur", "fcur", "task", "len_pred", "level_seen", "err", "err_code", "policy", "lenlut")


def _pair(p: AccelParams, seed: int):
    ref, sim = AccelModel(p), Accelerator(p)
    pol, ll = policy_setup(p, seed)
    for m in (ref, sim):
        m.policy, m.lenlut = list(pol), list(ll)
    return ref, sim


@pytest.mark.parametrize("params", [AccelParams.small(), AccelParams.asic28()], ids=["small", "asic28"])
@pytest.mark.parametrize("seed", range(6))
def test_random_streams_match_reference(params, seed):
    items = random_stream(params, seed, length=120)
    ref, sim = _pair(params, seed)
    n_err = 0
    for it in items:
        code = ref.check(it.desc)
        t_ref, out_ref = ref.execute(it.desc, it.beats)
        t_sim, out_sim = sim.execute(it.desc, it.beats)
        assert out_sim == out_ref, it.desc
        expect = 1 if code else t_ref
        assert t_sim == expect, it.desc
        if not code and it.desc.op not in (Op.DVFS_SET, Op.DVFS_POLICY):
            assert t_sim == cycles(params, it.desc)          # the spec formula, no stalls
        n_err += bool(code)
        assert sim.read(0x014) == t_sim
    for f in STATE:
        assert getattr(sim, f) == getattr(ref, f), f
    assert sim.cmd_count == len(items) and sim.err_count == n_err > 0
    ops = {it.desc.op for it in items}
    assert {Op.GEMV, Op.LORA, Op.ROUTE, Op.LOAD, Op.STORE} <= ops


@pytest.mark.parametrize("n", [4, 16])
def test_gemv_saturation_and_int4_bit_exact(n):
    rng = random.Random(n)
    p = AccelParams(n=n)
    for trial in range(30):
        int4 = trial % 2 == 1
        kt, m = rng.randint(1, 9), rng.randint(1, 3)
        lo, hi = (-128, 127)
        extreme = trial % 3 == 0
        xs = [[rng.choice([lo, hi]) if extreme else rng.randint(lo, hi) for _ in range(n)]
              for _ in range(m * kt)]
        wl = 2 * n * n if int4 else n * n
        nw = (kt + 1) // 2 if int4 else kt
        wwords = [pack([rng.choice([-8, 7, -1]) if (extreme and int4) else
                        rng.choice([lo, hi]) if extreme else rng.randint(-8 if int4 else lo, 7 if int4 else hi)
                        for _ in range(wl)], 4 if int4 else 8) for _ in range(nw)]
        init = [[rng.choice([(1 << 31) - 5, -(1 << 31) + 5, 0]) for _ in range(n)] for _ in range(m)]
        got = fm.gemv(n, [pack(x, 8) for x in xs], wwords, kt, m, int4, np.array(init))
        for i in range(m):
            exp = mac_gemv(p, xs[i * kt:(i + 1) * kt], wwords, int4, init[i])
            assert list(got[i]) == exp


def test_lora_numpy_matches_reference_path():
    p = AccelParams.small()
    rng = random.Random(3)
    sim = Accelerator(p)
    r8 = lambda k: [rng.randint(-128, 127) for _ in range(k)]
    d_in, d_out = p.kt * p.n, p.nt * p.n
    experts = [([r8(d_in) for _ in range(p.rk)], [r8(p.rk) for _ in range(d_out)]) for _ in range(p.ne)]
    from hw.reference import adapter_words
    for e, (a_m, b_m) in enumerate(experts):
        sim.envm[e * p.ew:(e + 1) * p.ew] = adapter_words(p, a_m, b_m)
    sim.gates = [rng.randint(0, 1 << 16) for _ in range(p.ne)]
    sim.slots = [3, 1]
    x = r8(d_in)
    base = [rng.choice([(1 << 31) - 1, -(1 << 31), rng.randint(-1000, 1000)]) for _ in range(d_out)]
    sim.abuf[:p.kt] = [pack(x[t * p.n:(t + 1) * p.n], 8) for t in range(p.kt)]
    sim.obuf[:p.nt] = [pack(base[j * p.n:(j + 1) * p.n], 32) for j in range(p.nt)]
    for sh_a, sh_b in ((0, 0), (6, 3), (31, 31)):
        sim.execute(Desc(Op.LORA, f=2, a=0, b=0, c=8, d=sh_a, e=sh_b))
        got = sum((unpack(w, 32, p.n) for w in sim.obuf[8:8 + p.nt]), [])
        exp = lora_path(p, x, base, [experts[3], experts[1]], [sim.gates[3], sim.gates[1]], sh_a, sh_b)
        assert got == exp


def test_lora_overlapping_output_is_processed_tile_by_tile():
    """c = b + 1: output tile 0 overwrites base tile 1 before it is read (RTL order, spec 7)."""
    p = AccelParams.small()
    sim = Accelerator(p)
    sim.obuf[0:3] = [pack([100 * (j + 1)] * p.n, 32) for j in range(3)]
    sim.gates = [0] * p.ne                        # LoRA contribution 0: out = base
    sim.execute(Desc(Op.LORA, f=1, a=0, b=0, c=1))
    assert [unpack(w, 32, p.n)[0] for w in sim.obuf[0:3]] == [100, 100, 100]


def test_link_stalls_follow_recurrence():
    p = AccelParams.small()
    rng = random.Random(7)
    for _ in range(40):
        link = StreamLink(Fraction(rng.randint(1, 5), rng.randint(5, 9)), rng.randint(0, 20))
        words, bpw, t_w = rng.randint(1, 6), rng.choice([1, 4, 16]), rng.choice([0, 4])
        # cycle-by-cycle reference of the receiving state machine
        offer = link.offer(words * bpw)
        t, i, busy_until = 1, 0, 0
        while i < words * bpw:
            if t >= busy_until and offer[i] <= t:
                i += 1
                if i % bpw == 0 and t_w:
                    busy_until = t + 1 + t_w
            t += 1
        expected_stall = t - 1 - words * bpw - (words - 1) * t_w
        assert load_stall(link, words, bpw, t_w) == expected_stall
        # STORE: read cycle, then beats as the sink allows
        slots = 2 + link.sink_slots(words * bpw)
        t, i = 2, 0
        while i < words * bpw:
            if slots[i] <= t:
                i += 1
                t += 2 if (i % bpw == 0) else 1
            else:
                t += 1
        assert store_stall(link, words, bpw) == t - 2 - words * (1 + bpw)
    slow = StreamLink(Fraction(1, 2), 10)
    tt, stall, _ = command_cost(p, Desc(Op.LOAD, f=Buf.WBUF, a=0, d=2), slow)
    assert stall > 0 and tt == cycles(p, Desc(Op.LOAD, f=Buf.WBUF, a=0, d=2), stall=stall)


def test_queue_timing_and_qfull():
    p = AccelParams.small()
    sim = Accelerator(p)
    stream = [Desc(Op.GEMV, a=0, b=0, c=0, d=3, e=2), Desc(Op.NOP), Desc(Op.ACTIVATE, f=1, a=2)]
    recs = sim.run(stream)
    ts = [r.t for r in recs]
    assert ts == [1 + 2 * 6, 1, 1]
    assert [r.pop_cycle for r in recs] == [0, ts[0] + 1, ts[0] + ts[1] + 2]
    assert sim.read(0x010) == sum(t + 1 for t in ts) and sim.read(0x018) == 3
    # explicit push times: a long command keeps the queue from draining
    sim2 = Accelerator(p)
    long = Desc(Op.GEMV, a=0, b=0, c=0, d=10, e=4)
    codes = [sim2.push(long, at=i) for i in range(p.qdepth + 2)]
    assert codes[:p.qdepth + 1] == [0] * (p.qdepth + 1)          # the first one is popped at once
    assert codes[-1] == Err.QFULL and sim2.read(0x00C) & 0xF == Err.QFULL
    assert (sim2.read(0x00C) >> 4) & 0xF == Op.GEMV
    sim2.drain()
    assert sim2.read(0x018) == p.qdepth + 1


def test_error_codes_and_registers():
    p = AccelParams.small()
    sim = Accelerator(p)
    cases = [(Desc(12), Err.OPCODE), (Desc(Op.LOAD, f=5, d=1), Err.BUF), (Desc(Op.LOAD, f=0, d=0), Err.ARG),
             (Desc(Op.STORE, f=2, a=p.obuf_depth, d=1), Err.ADDR), (Desc(Op.ACTIVATE, f=0, a=p.ne), Err.ADAPTER),
             (Desc(Op.ACTIVATE, f=p.nslot, a=p.ne), Err.ARG), (Desc(Op.DVFS_SET, a=p.nl), Err.LEVEL),
             (Desc(Op.GEMV, d=0, e=1, a=p.abuf_depth), Err.ARG), (Desc(Op.LORA, f=p.nslot + 1), Err.ARG)]
    for i, (d, code) in enumerate(cases):
        rec = sim.run([d])[0]
        assert (rec.err, rec.t) == (code, 1)
        st = sim.read(0x008)
        assert (st >> 1) & 1 == 1 and (st >> 4) & 0xF == code
        info = sim.read(0x00C)
        assert (info >> 4) & 0xF == d.op & 0xF and info >> 16 == i + 1
        sim.write(0x004, 1)
        assert (sim.read(0x008) >> 1) & 1 == 0
    assert sim.read(0x000) == 0xC10E0001 and sim.read(0x028) & 0xFF == p.n
    assert sim.read(0x400) == 0


def test_dvfs_timing_uses_ldo_state():
    p = AccelParams.asic28()
    sim = Accelerator(p)
    t1 = sim.run([Desc(Op.DVFS_SET, a=p.nl - 1)])[0].t
    v0, vt = sim.vf[0][0], sim.vf[p.nl - 1][0]
    assert t1 == 1 + (vt - v0) * p.t_slew + p.t_settle + p.t_lock
    rec = sim.run([Desc(Op.DVFS_SET, a=p.nl - 1)])[0]
    assert rec.t == 1 + p.t_settle + p.t_lock                      # same level: both phases still run
    from sim.actions import INDEX
    assert sim.log[0].actions[INDEX["ldo_step"]] == vt - v0 and rec.actions[INDEX["pll_relock"]] == 1
