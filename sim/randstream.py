"""Seeded random command streams (descriptors with their stream data) for cross-checking the
simulator against hw/reference.py and the RTL: every opcode, random fields mostly in range, a share
of invalid descriptors (each error code), extreme data for saturation and INT4 sign extension."""
from __future__ import annotations

import random
from dataclasses import dataclass

from hw.params import AccelParams
from hw.reference import Buf, Desc, Op, pack


@dataclass
class StreamItem:
    desc: Desc
    beats: list[int] | None = None     # s_axis beats of LOAD / LOAD_ADAPTER
    out_beats: int = 0                 # m_axis beats of STORE (0 if rejected)


def _rand_word(rng: random.Random, bits: int, extreme: bool) -> int:
    if extreme:
        return rng.choice([0, (1 << bits) - 1, int("80" * (bits // 8), 16), int("7f" * (bits // 8), 16)])
    return rng.getrandbits(bits)


def random_stream(p: AccelParams, seed: int, length: int = 40, p_bad: float = 0.15,
                  adapters: bool = True, dvfs: bool = True, lora_overlap: bool = True) -> list[StreamItem]:
    """lora_overlap=False keeps LORA output ranges from overwriting a base tile the command has
    yet to read (c in (b, b+NT)); with True such hazards occur (tiles are processed in order,
    docs/hw-spec.md 3.2)."""
    rng = random.Random(seed)
    items: list[StreamItem] = []

    def load(buf: int, a: int, d: int, extreme: bool = False) -> StreamItem:
        nb = p.beats(buf)
        beats = [_rand_word(rng, 32, extreme) for _ in range(d * nb)]
        return StreamItem(Desc(Op.LOAD, f=buf, a=a, d=d), beats)

    # fill every buffer first so GEMV/LORA/ROUTE see data
    for buf in (Buf.ABUF, Buf.WBUF, Buf.OBUF, Buf.EMB):
        items.append(load(buf, 0, p.depth(buf), extreme=False))
    if adapters:
        for e in range(min(p.ne, 2)):
            items.append(StreamItem(Desc(Op.LOAD_ADAPTER, a=e), [rng.getrandbits(32) for _ in range(p.ew * p.b_a)]))
    ops = [Op.LOAD, Op.STORE, Op.GEMV, Op.GEMV, Op.GEMV, Op.LORA, Op.ROUTE, Op.ACTIVATE, Op.NOP,
           Op.PREDICT_LEN] + ([Op.LOAD_ADAPTER] if adapters else []) + ([Op.DVFS_SET, Op.DVFS_POLICY] if dvfs else [])
    while len(items) < length:
        bad = rng.random() < p_bad
        op = rng.choice(ops)
        if bad and rng.random() < 0.2:
            items.append(StreamItem(Desc(rng.randint(11, 15), a=rng.randint(0, 7))))
            continue
        if op in (Op.LOAD, Op.STORE):
            buf = rng.randint(0, 3) if not bad else rng.randint(0, 7)
            depth = p.depth(buf) if buf < 4 else 8
            d = rng.randint(1, min(4, depth))
            a = rng.randint(0, depth - d)
            if bad and buf < 4:
                d, a = rng.choice([(0, a), (d, depth - d + 1)])
            desc = Desc(op, f=buf, a=a, d=d)
            if bad:                                   # rejected: no stream traffic
                items.append(StreamItem(desc))
            elif op == Op.LOAD:
                extreme = rng.random() < 0.3
                items.append(StreamItem(desc, [_rand_word(rng, 32, extreme) for _ in range(d * p.beats(buf))]))
            else:
                items.append(StreamItem(desc, out_beats=d * p.beats(buf)))
        elif op == Op.GEMV:
            int4 = rng.random() < 0.4
            acc = rng.random() < 0.4
            m = rng.randint(1, 3)
            kt = rng.randint(1, min(p.abuf_depth // m, 2 * p.wbuf_depth if int4 else p.wbuf_depth, 6))
            wt = (kt + 1) // 2 if int4 else kt
            a = rng.randint(0, p.abuf_depth - m * kt)
            b = rng.randint(0, p.wbuf_depth - wt)
            c = rng.randint(0, p.obuf_depth - m)
            if bad:
                kt, m, a = rng.choice([(0, m, a), (kt, 0, a), (kt, m, p.abuf_depth - m * kt + 1)])
            items.append(StreamItem(Desc(Op.GEMV, f=int(int4) | int(acc) << 1, a=a, b=b, c=c, d=kt, e=m)))
        elif op == Op.LORA:
            n = rng.randint(1, p.nslot) if not bad else rng.choice([0, p.nslot + 1])
            a = rng.randint(0, p.abuf_depth - p.kt)
            b = rng.randint(0, p.obuf_depth - p.nt)
            c = rng.randint(0, p.obuf_depth - p.nt)
            while not lora_overlap and b < c < b + p.nt:
                c = rng.randint(0, p.obuf_depth - p.nt)
            items.append(StreamItem(Desc(Op.LORA, f=n, a=a, b=b, c=c, d=rng.randint(0, 10), e=rng.randint(0, 8))))
        elif op == Op.ROUTE:
            a = rng.randint(0, p.abuf_depth - p.et) if not bad else p.abuf_depth - p.et + 1
            items.append(StreamItem(Desc(Op.ROUTE, a=a, e=rng.randint(0, 255))))
        elif op == Op.ACTIVATE:
            s = rng.randint(0, p.nslot - 1) if not bad else p.nslot
            e = rng.randint(0, p.ne - 1) if not (bad and rng.random() < 0.5) else p.ne
            items.append(StreamItem(Desc(Op.ACTIVATE, f=s, a=e)))
        elif op == Op.LOAD_ADAPTER:
            e = rng.randint(0, p.ne - 1) if not bad else p.ne + rng.randint(0, 3)
            beats = [rng.getrandbits(32) for _ in range(p.ew * p.b_a)] if not bad else None
            items.append(StreamItem(Desc(Op.LOAD_ADAPTER, a=e), beats))
        elif op == Op.DVFS_SET:
            items.append(StreamItem(Desc(Op.DVFS_SET, a=rng.randint(0, p.nl - 1) if not bad else p.nl)))
        elif op == Op.DVFS_POLICY:
            load_, slack = rng.randint(0, (1 << p.lb) - 1), rng.randint(0, (1 << p.sb) - 1)
            if bad:
                load_ = 1 << p.lb
            items.append(StreamItem(Desc(Op.DVFS_POLICY, f=rng.randint(0, 1), a=load_, b=slack)))
        elif op == Op.PREDICT_LEN:
            items.append(StreamItem(Desc(Op.PREDICT_LEN, a=rng.randint(0, p.npb - 1) if not bad else p.npb)))
        else:
            items.append(StreamItem(Desc(Op.NOP)))
    return items


def policy_setup(p: AccelParams, seed: int) -> tuple[list[int], list[int]]:
    """Register contents the host writes before a stream: policy LUT (some entries >= NL to hit
    E_LEVEL) and the length LUT."""
    rng = random.Random(seed ^ 0x5EED)
    policy = [rng.randint(0, p.nl - 1) if rng.random() < 0.85 else p.nl + rng.randint(0, 3)
              for _ in range(p.npol)]
    lenlut = [rng.randint(0, 0xFFFF) for _ in range(p.nlen)]
    return policy, lenlut


def pack_lanes(values: list[int], bits: int) -> int:
    return pack(values, bits)
