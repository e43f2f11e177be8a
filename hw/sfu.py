"""Special Function Unit for DVFS: policy LUT, V/f table, behavioural LDO (slew, settle) and ADPLL
(lock) models with status flags, the length-predictor LUT and the SFU register pages
(docs/hw-spec.md, sections 3.4 and 6)."""
from __future__ import annotations

from amaranth import Module, Signal, Mux, Array, Cat
from amaranth.lib import wiring, stream
from amaranth.lib.wiring import In, Out

from hw.axi import regbus_signature
from hw.lpu import ROUTE_BEAT
from hw.params import AccelParams
from hw.reference import vf_reset


class Sfu(wiring.Component):
    def __init__(self, p: AccelParams):
        self.p = p
        super().__init__({
            "bus": In(regbus_signature()),
            "from_lpu": In(stream.Signature(ROUTE_BEAT)),
            "to_lpu": Out(stream.Signature(4)),
            # command interface: `start` with `use_policy` (else `level`), policy index fields
            "start": In(1), "use_policy": In(1), "level": In(4),
            "load": In(12), "slack": In(12), "phase": In(1),
            "pol_level": Out(8),                 # policy entry for load/slack/phase (decode check)
            "pred": In(1), "bucket": In(12),
            "done": Out(1), "settled": Out(1), "locked": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.p
        vf0 = vf_reset(p)
        vf = Array(Signal(16, name=f"vf{l}", init=vf0[l][0] | vf0[l][1] << 8) for l in range(p.nl))
        pol = Array(Signal(8, name=f"pol{i}") for i in range(p.npol))
        lenlut = Array(Signal(16, name=f"len{i}") for i in range(p.nlen))
        level = Signal(4)
        vcur = Signal(8, init=vf0[0][0])
        fcur = Signal(8, init=vf0[0][1])
        settled = Signal(init=1)
        locked = Signal(init=1)
        task = Signal(4)
        len_pred = Signal(16)
        m.d.comb += [self.settled.eq(settled), self.locked.eq(locked)]

        pidx = Signal(p.lb + p.sb + 1)
        m.d.comb += [pidx.eq(Cat(self.load[:p.lb], self.slack[:p.sb], self.phase)),
                     self.pol_level.eq(pol[pidx])]

        # --- length predictor and task class from the LPU
        m.d.comb += self.from_lpu.ready.eq(1)
        with m.If(self.from_lpu.valid):
            m.d.sync += task.eq(self.from_lpu.payload.task)
        with m.If(self.pred):
            m.d.sync += len_pred.eq(lenlut[task * p.npb + self.bucket[:max(1, (p.npb - 1).bit_length())]])

        # --- DVFS sequencing
        tgt = Signal(4)
        vt = Signal(8)
        ft = Signal(8)
        up = Signal()           # frequency rises: LDO first, then ADPLL
        cnt = Signal(range(max(p.t_slew, p.t_settle, p.t_lock) + 1))
        second = Signal()       # in the second phase
        new_level = Mux(self.use_policy, self.pol_level[:4], self.level)
        entry = vf[new_level]

        def enter_ldo(v_target):
            m.d.sync += [cnt.eq(0), settled.eq(0)]
            with m.If(vcur == v_target):
                m.next = "SETTLE"
            with m.Else():
                m.next = "SLEW"

        def enter_pll(f_target):
            m.d.sync += [cnt.eq(0), locked.eq(0), fcur.eq(f_target)]
            m.next = "LOCK"

        def finish():
            m.d.comb += [self.done.eq(1), self.to_lpu.valid.eq(1)]
            m.d.sync += level.eq(tgt)
            m.next = "IDLE"

        m.d.comb += self.to_lpu.payload.eq(tgt)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    ev, ef = entry[:8], entry[8:]
                    is_up = ef > fcur
                    m.d.sync += [tgt.eq(new_level), vt.eq(ev), ft.eq(ef), up.eq(is_up), second.eq(0)]
                    with m.If(is_up):
                        enter_ldo(ev)
                    with m.Else():
                        enter_pll(ef)
            with m.State("SLEW"):
                m.d.sync += cnt.eq(cnt + 1)
                with m.If(cnt == p.t_slew - 1):
                    nv = Mux(vt > vcur, vcur + 1, vcur - 1)
                    m.d.sync += [cnt.eq(0), vcur.eq(nv)]
                    with m.If(nv[:8] == vt):
                        m.next = "SETTLE"
            with m.State("SETTLE"):
                m.d.sync += cnt.eq(cnt + 1)
                with m.If(cnt == p.t_settle - 1):
                    m.d.sync += [settled.eq(1), second.eq(1)]
                    with m.If(second):
                        finish()
                    with m.Else():
                        enter_pll(ft)
            with m.State("LOCK"):
                m.d.sync += cnt.eq(cnt + 1)
                with m.If(cnt == p.t_lock - 1):
                    m.d.sync += [locked.eq(1), second.eq(1)]
                    with m.If(second):
                        finish()
                    with m.Else():
                        enter_ldo(vt)

        # --- register pages 0x200-0x3FF
        bus = self.bus
        with m.If(bus.we):
            for l in range(p.nl):
                with m.If(bus.waddr == 0x240 + 4 * l):
                    m.d.sync += vf[l].eq(bus.wdata[:16])
            for i in range(p.nlen):
                with m.If(bus.waddr == 0x280 + 4 * i):
                    m.d.sync += lenlut[i].eq(bus.wdata[:16])
            for i in range(p.npol):
                with m.If(bus.waddr == 0x300 + 4 * i):
                    m.d.sync += pol[i].eq(bus.wdata[:8])
        with m.Switch(bus.raddr):
            for addr, sig in ((0x200, level), (0x204, vcur), (0x208, fcur),
                              (0x20C, Cat(settled, locked)), (0x210, len_pred), (0x214, task)):
                with m.Case(addr):
                    m.d.comb += bus.rdata.eq(sig)
            for l in range(p.nl):
                with m.Case(0x240 + 4 * l):
                    m.d.comb += bus.rdata.eq(vf[l])
            for i in range(p.nlen):
                with m.Case(0x280 + 4 * i):
                    m.d.comb += bus.rdata.eq(lenlut[i])
            for i in range(p.npol):
                with m.Case(0x300 + 4 * i):
                    m.d.comb += bus.rdata.eq(pol[i])
        return m
