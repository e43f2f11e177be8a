"""Top level of the CLONE accelerator: AXI4-Lite host port through the splitter, AXI-Stream in and
out, the SRAM buffers and their ownership by the active unit (docs/hw-spec.md, section 1)."""
from __future__ import annotations

from amaranth import Module, Mux
from amaranth.lib import wiring, stream
from amaranth.lib.wiring import In, Out

from hw.axi import AxiLiteBridge, AxiLiteSplitter, axil_signature, OUT_BEAT
from hw.lpu import Lpu
from hw.mac_array import GemvEngine
from hw.params import AccelParams
from hw.sequencer import Sequencer, OWN_GEMV, OWN_LPU
from hw.sfu import Sfu
from hw.sram import Sram


class CloneAccel(wiring.Component):
    def __init__(self, p: AccelParams | None = None):
        self.p = p or AccelParams.small()
        super().__init__({
            "axi": In(axil_signature()),
            "s_axis": In(stream.Signature(32)),
            "m_axis": Out(stream.Signature(OUT_BEAT)),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.p
        n = p.n
        # splitter: page 0 control, 1 LPU, 2-3 SFU
        m.submodules.split = split = AxiLiteSplitter([0, 1, 2, 2], 3)
        wiring.connect(m, wiring.flipped(self.axi), split.s)
        bridges = []
        for i in range(3):
            br = AxiLiteBridge()
            m.submodules[f"bridge{i}"] = br
            wiring.connect(m, getattr(split, f"m{i}"), br.axi)
            bridges.append(br)

        m.submodules.seq = seq = Sequencer(p)
        m.submodules.gemv = gemv = GemvEngine(p)
        m.submodules.lpu = lpu = Lpu(p)
        m.submodules.sfu = sfu = Sfu(p)
        wiring.connect(m, bridges[0].bus, seq.bus)
        wiring.connect(m, bridges[1].bus, lpu.bus)
        wiring.connect(m, bridges[2].bus, sfu.bus)
        wiring.connect(m, wiring.flipped(self.s_axis), seq.s_axis)
        wiring.connect(m, seq.m_axis, wiring.flipped(self.m_axis))
        wiring.connect(m, seq.adp, lpu.adp)
        wiring.connect(m, lpu.to_sfu, sfu.from_lpu)
        wiring.connect(m, sfu.to_lpu, lpu.from_sfu)

        # command hand-off
        m.d.comb += [
            gemv.start.eq(seq.gemv_start), gemv.int4.eq(seq.f[0]), gemv.accf.eq(seq.f[1]),
            gemv.a.eq(seq.a), gemv.b.eq(seq.b), gemv.c.eq(seq.c), gemv.kt.eq(seq.d), gemv.m.eq(seq.e),
            lpu.lora_start.eq(seq.lora_start), lpu.route_start.eq(seq.route_start),
            lpu.adp_start.eq(seq.adp_start), lpu.act_we.eq(seq.act_we), lpu.abort.eq(seq.abort),
            lpu.f.eq(seq.f), lpu.a.eq(seq.a), lpu.b.eq(seq.b), lpu.c.eq(seq.c), lpu.d.eq(seq.d),
            lpu.e.eq(seq.e),
            sfu.start.eq(seq.sfu_start), sfu.use_policy.eq(seq.use_policy), sfu.level.eq(seq.a[:4]),
            sfu.load.eq(seq.a), sfu.slack.eq(seq.b), sfu.phase.eq(seq.f[0]),
            sfu.pred.eq(seq.pred), sfu.bucket.eq(seq.a),
            seq.gemv_done.eq(gemv.done), seq.lpu_done.eq(lpu.done), seq.sfu_done.eq(sfu.done),
            seq.pol_level.eq(sfu.pol_level), seq.settled.eq(sfu.settled), seq.locked.eq(sfu.locked),
        ]

        # buffers and their owners
        m.submodules.abuf = abuf = Sram(p.abuf_depth, 8 * n)
        m.submodules.wbuf = wbuf = Sram(p.wbuf_depth, 8 * n * n)
        m.submodules.obuf = obuf = Sram(p.obuf_depth, 32 * n)
        m.submodules.emb = emb = Sram(p.emb_depth, 8 * n)
        own = seq.owner
        m.d.comb += [
            abuf.rd.addr.eq(Mux(own == OWN_GEMV, gemv.abuf.addr,
                                Mux(own == OWN_LPU, lpu.abuf.addr, seq.abuf_r.addr))),
            wbuf.rd.addr.eq(Mux(own == OWN_GEMV, gemv.wbuf.addr, seq.wbuf_r.addr)),
            obuf.rd.addr.eq(Mux(own == OWN_GEMV, gemv.obuf_r.addr,
                                Mux(own == OWN_LPU, lpu.obuf_r.addr, seq.obuf_r.addr))),
            emb.rd.addr.eq(Mux(own == OWN_LPU, lpu.emb.addr, seq.emb_r.addr)),
            obuf.wr.addr.eq(Mux(own == OWN_GEMV, gemv.obuf_w.addr,
                                Mux(own == OWN_LPU, lpu.obuf_w.addr, seq.obuf_w.addr))),
            obuf.wr.data.eq(Mux(own == OWN_GEMV, gemv.obuf_w.data,
                                Mux(own == OWN_LPU, lpu.obuf_w.data, seq.obuf_w.data))),
            obuf.wr.en.eq(Mux(own == OWN_GEMV, gemv.obuf_w.en,
                              Mux(own == OWN_LPU, lpu.obuf_w.en, seq.obuf_w.en))),
        ]
        for name, mem in (("abuf", abuf), ("wbuf", wbuf), ("emb", emb)):
            wiring.connect(m, getattr(seq, f"{name}_w"), mem.wr)
        for src, mem in ((seq.abuf_r, abuf), (gemv.abuf, abuf), (lpu.abuf, abuf),
                         (seq.wbuf_r, wbuf), (gemv.wbuf, wbuf), (seq.obuf_r, obuf),
                         (gemv.obuf_r, obuf), (lpu.obuf_r, obuf), (seq.emb_r, emb), (lpu.emb, emb)):
            m.d.comb += src.data.eq(mem.rd.data)
        return m
