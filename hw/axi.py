"""AXI4-Lite and AXI-Stream plumbing: the AXI4-Lite signature, a partition bridge to a simple
register bus, and the splitter that routes host transactions to the control, LPU and SFU
partitions (docs/hw-spec.md, section 4)."""
from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import wiring, data
from amaranth.lib.wiring import In, Out

ADDR_W = 12
PART_W = 10   # partitions see the low 10 address bits (0x000-0x3FF) and decode full offsets


def axil_signature(addr_w: int = ADDR_W) -> wiring.Signature:
    """AXI4-Lite from the manager's point of view (Out = driven by the manager)."""
    return wiring.Signature({
        "awaddr": Out(addr_w), "awvalid": Out(1), "awready": In(1),
        "wdata": Out(32), "wstrb": Out(4), "wvalid": Out(1), "wready": In(1),
        "bresp": In(2), "bvalid": In(1), "bready": Out(1),
        "araddr": Out(addr_w), "arvalid": Out(1), "arready": In(1),
        "rdata": In(32), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
    })


def regbus_signature(addr_w: int = PART_W) -> wiring.Signature:
    """Simple register bus from the bridge's point of view: a write strobe, a read address with
    combinational read data."""
    return wiring.Signature({
        "waddr": Out(addr_w), "wdata": Out(32), "we": Out(1),
        "raddr": Out(addr_w), "rdata": In(32),
    })


# stream payload of the output port: data and last
OUT_BEAT = data.StructLayout({"data": 32, "last": 1})


class AxiLiteBridge(wiring.Component):
    """AXI4-Lite subordinate of one partition: writes need AW and W together (accepted in the
    same cycle, register strobe that cycle, B next cycle); reads answer one cycle after AR."""

    def __init__(self, addr_w: int = PART_W):
        self._aw = addr_w
        super().__init__({"axi": In(axil_signature(addr_w)), "bus": Out(regbus_signature(addr_w))})

    def elaborate(self, platform):
        m = Module()
        axi, bus = self.axi, self.bus
        bpend = Signal()
        rpend = Signal()
        raddr = Signal(self._aw)
        acc_w = axi.awvalid & axi.wvalid & ~bpend
        m.d.comb += [axi.awready.eq(acc_w), axi.wready.eq(acc_w),
                     bus.waddr.eq(axi.awaddr), bus.wdata.eq(axi.wdata), bus.we.eq(acc_w),
                     axi.bvalid.eq(bpend), axi.bresp.eq(0)]
        with m.If(acc_w):
            m.d.sync += bpend.eq(1)
        with m.Elif(bpend & axi.bready):
            m.d.sync += bpend.eq(0)
        acc_r = axi.arvalid & ~rpend
        m.d.comb += [axi.arready.eq(acc_r), bus.raddr.eq(raddr), axi.rvalid.eq(rpend),
                     axi.rdata.eq(bus.rdata), axi.rresp.eq(0)]
        with m.If(acc_r):
            m.d.sync += [rpend.eq(1), raddr.eq(axi.araddr)]
        with m.Elif(rpend & axi.rready):
            m.d.sync += rpend.eq(0)
        return m


class AxiLiteSplitter(wiring.Component):
    """Routes each host transaction by address bits [11:8] to one of the partition ports
    (`targets` maps each 256-byte page to a port index, None = DECERR). One transaction at a
    time, registered in both directions."""

    def __init__(self, targets: list[int | None], nports: int):
        self._targets = targets
        self._n = nports
        members = {"s": In(axil_signature(ADDR_W))}
        for i in range(nports):
            members[f"m{i}"] = Out(axil_signature(PART_W))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        s = self.s
        ports = [getattr(self, f"m{i}") for i in range(self._n)]
        addr = Signal(ADDR_W)
        wdata = Signal(32)
        sel = Signal(range(self._n + 1))  # == n means decode error
        resp = Signal(2)
        rdata = Signal(32)
        page = Signal(4)

        def decode(a):
            m.d.comb += page.eq(a[8:12])
            with m.Switch(page):
                for pg, tgt in enumerate(self._targets):
                    with m.Case(pg):
                        m.d.sync += sel.eq(self._n if tgt is None else tgt)
                with m.Default():
                    m.d.sync += sel.eq(self._n)

        for i, p in enumerate(ports):
            m.d.comb += [p.awaddr.eq(addr[:PART_W]), p.wdata.eq(wdata), p.wstrb.eq(0xF),
                         p.araddr.eq(addr[:PART_W])]

        with m.FSM():
            with m.State("IDLE"):
                with m.If(s.awvalid & s.wvalid):
                    m.d.comb += [s.awready.eq(1), s.wready.eq(1)]
                    m.d.sync += [addr.eq(s.awaddr), wdata.eq(s.wdata)]
                    decode(s.awaddr)
                    m.next = "W_FWD"
                with m.Elif(s.arvalid):
                    m.d.comb += s.arready.eq(1)
                    m.d.sync += addr.eq(s.araddr)
                    decode(s.araddr)
                    m.next = "R_FWD"
            with m.State("W_FWD"):
                with m.If(sel == self._n):
                    m.d.sync += resp.eq(3)
                    m.next = "B_OUT"
                for i, p in enumerate(ports):
                    with m.If(sel == i):
                        m.d.comb += [p.awvalid.eq(1), p.wvalid.eq(1)]
                        with m.If(p.awready & p.wready):
                            m.next = "W_RESP"
            with m.State("W_RESP"):
                for i, p in enumerate(ports):
                    with m.If(sel == i):
                        m.d.comb += p.bready.eq(1)
                        with m.If(p.bvalid):
                            m.d.sync += resp.eq(p.bresp)
                            m.next = "B_OUT"
            with m.State("B_OUT"):
                m.d.comb += [s.bvalid.eq(1), s.bresp.eq(resp)]
                with m.If(s.bready):
                    m.next = "IDLE"
            with m.State("R_FWD"):
                with m.If(sel == self._n):
                    m.d.sync += [resp.eq(3), rdata.eq(0)]
                    m.next = "R_OUT"
                for i, p in enumerate(ports):
                    with m.If(sel == i):
                        m.d.comb += p.arvalid.eq(1)
                        with m.If(p.arready):
                            m.next = "R_RESP"
            with m.State("R_RESP"):
                for i, p in enumerate(ports):
                    with m.If(sel == i):
                        m.d.comb += p.rready.eq(1)
                        with m.If(p.rvalid):
                            m.d.sync += [resp.eq(p.rresp), rdata.eq(p.rdata)]
                            m.next = "R_OUT"
            with m.State("R_OUT"):
                m.d.comb += [s.rvalid.eq(1), s.rresp.eq(resp), s.rdata.eq(rdata)]
                with m.If(s.rready):
                    m.next = "IDLE"
        return m
