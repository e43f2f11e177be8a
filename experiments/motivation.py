"""The paper's motivation shapes on the simulated board (Gemma-2B-sized, fp16): prefill grows with the
prompt while TPOT stays flat; decode is memory-bound (a lower GPU clock costs little decode latency);
a co-running web search stretches a response. Compared with the paper's Orin NX / Nano figures
(PAPER.md section 4) under two runtime calibrations: `tuned` (fitted to published MLC/TensorRT-LLM
decode speeds) and `paper-eager` (fitted to two of the paper's own NX figures; the rest are checks).
"""

from __future__ import annotations

import statistics

from clone.costmodel import CostShape
from clone.costmodel.validation import model_shape
from clone.runtime.device import Clocks
from clone.runtime.simboard import SimulatedBoard

PAPER = {  # PAPER.md section 4 (Gemma-2B)
    ("jetson-orin-nx-16gb", 128): (255, 198), ("jetson-orin-nx-16gb", 1024): (1935, None),
    ("jetson-orin-nano-8gb", 128): (268, 231),
}
BOARDS = (("jetson-orin-nx-16gb", "MAXN"), ("jetson-orin-nano-8gb", "15W"), ("jetson-orin-nano-8gb", "MAXN_SUPER"))


def measure(board: SimulatedBoard, prompt: int, out: int = 16) -> tuple[float, float]:
    """TTFT and mean TPOT (ms) of one request, run through the board's virtual clock."""
    t0 = board.now()
    board.run_pass(prompt, 0)
    ttft = board.now() - t0
    t1 = board.now()
    for k in range(out - 1):
        board.run_pass(1, prompt + k)
    return ttft * 1e3, (board.now() - t1) / (out - 1) * 1e3


def main() -> None:
    shape = CostShape(model_shape("gemma-2b"))  # fp16
    for runtime in ("tuned", "paper-eager"):
        print(f"\n== runtime calibration: {runtime} ==")
        print(f"{'board':22} {'mode':10} {'prompt':>6} {'TTFT ms':>9} {'TPOT ms':>8} {'paper TTFT':>10} {'paper TPOT':>10}")
        for name, mode in BOARDS:
            for prompt in (128, 256, 512, 1024):
                b = SimulatedBoard(name, mode=mode, runtime=runtime)
                b.bind(shape)
                ttft, tpot = measure(b, prompt)
                pt, pp = PAPER.get((name, prompt), (None, None))
                f = lambda x: "-" if x is None else f"{x:.0f}"  # noqa: E731
                print(f"{name:22} {mode:10} {prompt:6d} {ttft:9.1f} {tpot:8.1f} {f(pt):>10} {f(pp):>10}")
        print(f"\nGPU clock sweep, Orin NX MAXN, EMC 3199 MHz, prompt 512 ({runtime}):")
        print(f"{'gpu MHz':>8} {'TTFT ms':>9} {'TPOT ms':>8} {'decode W':>9} {'decode J/token':>15}")
        base = None
        for gpu in (918, 714, 510, 306):
            b = SimulatedBoard("jetson-orin-nx-16gb", runtime=runtime)
            b.bind(shape)
            b.set_clocks(Clocks(gpu, 3199, 1984))
            t0 = b.now()
            b.run_pass(512, 0)
            ttft = (b.now() - t0) * 1e3
            b.begin_phase("decode")
            for k in range(16):
                b.run_pass(1, 512 + k)
            d = b.end_phase()
            tpot = d.time_s / 16
            base = base or (ttft, tpot)
            print(f"{gpu:8d} {ttft:9.1f} {tpot * 1e3:8.1f} {d.energy_J / d.time_s:9.2f} {d.energy_J / 16:15.3f}"
                  f"   (TTFT x{ttft / base[0]:.2f}, TPOT x{tpot / base[1]:.2f})")
    # Interference: a response of N tokens on the NX (paper-eager) with and without the web-search co-runner.
    n_tok = 214  # ~42.6 s idle end-to-end at the paper's 198 ms TPOT
    stretch = []
    idle = None
    for seed in range(10):
        for kind in ("none", "websearch"):
            b = SimulatedBoard("jetson-orin-nx-16gb", runtime="paper-eager", interference=kind, seed=seed)
            b.bind(shape)
            b.run_pass(128, 0)
            for k in range(n_tok - 1):
                b.run_pass(1, 128 + k)
            if kind == "none":
                idle = b.now()
            else:
                stretch.append(b.now())
    print(f"\nweb-search co-runner, Orin NX, {n_tok}-token response (paper-eager): idle {idle:.1f} s, with co-runner "
          f"{statistics.fmean(stretch):.1f} s mean over 10 seeds (min {min(stretch):.1f}, max {max(stretch):.1f}); "
          f"paper: 42.6 s -> 61.4 s (x1.44)")


if __name__ == "__main__":
    main()
