"""`clone profile-power --device sim:PROFILE|jetson [--mode M] [--out FILE]`: measure module power per
clock setting (GPU x EMC x a CPU subset) for the prefill and decode phases and save the power table
(CSV with the profile, mode and date) that the DVFS controller's reward uses."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from clone.errors import CloneError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profile-power", help="measure power per clock setting (prefill, decode) into a power table",
                       description=__doc__)
    p.add_argument("--device", required=True, help="sim:PROFILE (simulated board) or jetson (this board)")
    p.add_argument("--mode", default=None, help="power mode (default: the profile's)")
    p.add_argument("--out", default=None, help="CSV path (default: power-PROFILE-MODE.csv)")
    p.add_argument("--cpu-steps", type=int, default=5, help="CPU clock steps measured, spread over the ladder "
                   "(0 = all; default 5: the CPU only sets launch time)")
    p.add_argument("--shape", default=None, help="model shape for the simulated board (default llama-3.2-3b)")
    p.add_argument("--weight-bits", type=int, default=None, choices=(16, 8, 4))
    p.add_argument("--model", default="smollm2-135m", help="model a real board runs for the reference work")
    p.set_defaults(func=run)


def _real_runner(board, model: str):  # pragma: no cover - needs a Jetson
    from clone.model.checkpoint import load_checkpoint
    from clone.runtime.backends import TorchBackend
    from clone.dvfs.powertable import REF_DECODE_TOKENS, REF_PROMPT_TOKENS

    ckpt = load_checkpoint(model)
    be = TorchBackend(ckpt.model, max_len=REF_PROMPT_TOKENS + REF_DECODE_TOKENS + 8)
    ids = [1 + (i % 1000) for i in range(REF_PROMPT_TOKENS)]

    def pre() -> None:
        be.reset(REF_PROMPT_TOKENS + REF_DECODE_TOKENS + 4)
        be.prefill(ids)

    def dec() -> None:
        for _ in range(REF_DECODE_TOKENS):
            be.decode(1)
    return pre, dec, f"{model}: prefill {REF_PROMPT_TOKENS} tokens; decode {REF_DECODE_TOKENS} tokens"


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from clone.dvfs.powertable import grid, measure_power_table, measure_simulated
    from clone.dvfs.shape import resolve_shape
    from clone.runtime.simboard import SimulatedBoard, parse_device

    if args.cpu_steps < 0 or args.cpu_steps == 1:
        raise CloneError(f"--cpu-steps {args.cpu_steps}: must be 0 (all) or at least 2")
    if not (args.device.startswith("sim:") or args.device == "jetson"):
        raise CloneError(f"--device {args.device!r}: unknown device (allowed: sim:PROFILE, jetson)")
    board = parse_device(args.device, mode=args.mode)
    profile = board.profile
    sim_mode = getattr(board, "mode", None)  # a Jetson reports its nvpmodel mode instead
    mode = sim_mode.name if sim_mode is not None else (args.mode or board.nvpmodel_mode() or profile.default_mode)
    settings = grid(profile, mode, args.cpu_steps or None)
    bar = lambda xs: tqdm(xs, desc="profile-power", unit="setting", file=sys.stderr)  # noqa: E731
    with board:
        if isinstance(board, SimulatedBoard):
            table = measure_simulated(board, resolve_shape(args.shape, args.weight_bits), settings, progress=bar)
        else:  # pragma: no cover - a real board
            pre, dec, work = _real_runner(board, args.model)
            table = measure_power_table(board, pre, dec, settings, work, progress=bar, mode=mode)
    out = Path(args.out or f"power-{profile.name}-{table.mode}.csv")
    table.save(out)
    print(f"wrote {out}: {len(table.rows)} rows ({len(settings)} settings x prefill, decode) for {profile.name} "
          f"mode {table.mode}")
    return 0
