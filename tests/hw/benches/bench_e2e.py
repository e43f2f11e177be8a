"""End to end through the AXI interfaces: a small decoder-layer projection with its mixture of
LoRA experts. The host loads expert embeddings and adapters, routes a request embedding, hot-swaps
the top experts into the slots, sets the DVFS level from the policy and predicts the output length,
runs the base projection on the MAC array and adds the gated LoRA path for two tokens. Outputs are
compared bit for bit with an independent evaluation of the same maths (hw.reference functions on
plain matrices) and every command's cycles with the spec."""
import cocotb

from hw.reference import (Buf, Desc, Op, adapter_words, lora_path, mac_gemv, pack, route, unpack,
                          word_to_beats)
from tb import Tb


@cocotb.test()
async def decoder_layer_lora_and_routing(dut):
    tb = Tb(dut)
    p = tb.p
    n, rk = p.n, p.rk
    d_in, d_out, e_dim = p.kt * n, p.nt * n, p.et * n
    rng = tb.rng
    await tb.start()
    tb.in_gap, tb.out_gap = 0.2, 0.2
    r8 = lambda k: [rng.randint(-128, 127) for _ in range(k)]

    # experts: embeddings and adapters
    embs = [r8(e_dim) for _ in range(p.ne)]
    adapters = [([r8(d_in) for _ in range(rk)], [r8(rk) for _ in range(d_out)]) for _ in range(p.ne)]
    await tb.load(Buf.EMB, 0, [pack(e[t * n:(t + 1) * n], 8) for e in embs for t in range(p.et)])
    for e, (a_m, b_m) in enumerate(adapters):
        beats = [b for w in adapter_words(p, a_m, b_m) for b in word_to_beats(w, p.b_a)]
        await tb.run(Desc(Op.LOAD_ADAPTER, a=e), beats, what=f"LOAD_ADAPTER {e}")

    # routing decision for the request
    q = [(v + embs[2][i]) // 2 for i, v in enumerate(r8(e_dim))]   # close to expert 2
    await tb.load(Buf.ABUF, 60, [pack(q[t * n:(t + 1) * n], 8) for t in range(p.et)])
    beta = 96
    await tb.run(Desc(Op.ROUTE, a=60, e=beta), what="ROUTE")
    gates = [await tb.read(0x100 + 4 * e) for e in range(p.ne)]
    ref = route(p, q, embs, beta)
    tb.sb.eq("gates (independent)", gates, ref.gates)
    info = await tb.read(0x180)
    tb.sb.eq("argmax (independent)", info & 0xF, ref.argmax)
    top = sorted(range(p.ne), key=lambda e: (-gates[e], e))[:p.nslot]
    for s, e in enumerate(top):
        await tb.run(Desc(Op.ACTIVATE, f=s, a=e), what=f"ACTIVATE {s}<-{e}")

    # DVFS from the policy (decode phase, medium load, low slack) and the length prediction
    for i in range(p.npol):
        await tb.write(0x300 + 4 * i, i % p.nl)
        tb.model.policy[i] = i % p.nl
    for i in range(p.nlen):
        await tb.write(0x280 + 4 * i, 32 * (i + 1))
        tb.model.lenlut[i] = 32 * (i + 1)
    await tb.run(Desc(Op.DVFS_POLICY, f=1, a=2, b=1), what="DVFS_POLICY")
    await tb.run(Desc(Op.PREDICT_LEN, a=2), what="PREDICT_LEN")
    tb.sb.eq("predicted length (independent)", await tb.read(0x210), 32 * (ref.argmax * p.npb + 2 + 1))

    # the layer: W (d_out x d_in, INT8) for two tokens, then the LoRA path
    w = [r8(d_in) for _ in range(d_out)]
    wwords = []
    for j in range(p.nt):                  # output tile j: rows j*n.., kt words
        for t in range(p.kt):
            wwords.append(pack([w[j * n + r][t * n + c] for r in range(n) for c in range(n)], 8))
    await tb.load(Buf.WBUF, 0, wwords)
    xs = [r8(d_in) for _ in range(2)]
    await tb.load(Buf.ABUF, 0, [pack(x[t * n:(t + 1) * n], 8) for x in xs for t in range(p.kt)])
    sh_a, sh_b = 6, 3
    for i, x in enumerate(xs):
        for j in range(p.nt):
            await tb.run(Desc(Op.GEMV, a=i * p.kt, b=j * p.kt, c=8 * i + j, d=p.kt, e=1),
                         what=f"GEMV tok{i} tile{j}")
        await tb.run(Desc(Op.LORA, f=p.nslot, a=i * p.kt, b=8 * i, c=8 * i + 4, d=sh_a, e=sh_b),
                     what=f"LORA tok{i}")
        words = await tb.store(Buf.OBUF, 8 * i + 4, p.nt)
        got = sum((unpack(wd, 32, n) for wd in words), [])
        # independent evaluation
        base = []
        for j in range(p.nt):
            xt = [x[t * n:(t + 1) * n] for t in range(p.kt)]
            base += mac_gemv(p, xt, wwords[j * p.kt:(j + 1) * p.kt], False)
        exp = lora_path(p, x, base, [adapters[e] for e in top], [gates[e] for e in top], sh_a, sh_b)
        tb.sb.eq(f"layer output tok{i} (independent)", got, exp)
        tb.sb.eq(f"LoRA changed the output tok{i}", got != base, True)
    total = sum(t for _, t, _ in tb.sb.cycle_log)
    dut._log.info("end-to-end command cycles: %d", total)
    tb.sb.finish()
