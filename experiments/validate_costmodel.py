"""Check the roofline cost model against published Jetson decode speeds (one row per measurement).

Prints predicted vs published decode tokens/s and the % error per row, with the calibration in
clone/costmodel/calibration.yaml; --fit refits the bandwidth efficiency (the value to put there) and
also prints the leave-one-out error, which is the honest estimate for an unseen board/model.
"""

from __future__ import annotations

import argparse
import math

from clone.costmodel.roofline import calibration
from clone.costmodel.validation import ROWS_PATH, fit_bandwidth_efficiency, load_rows, validate


def table(rows) -> str:
    lines = [f"{'board':24} {'mode':10} {'runtime':26} {'model':13} {'weights GB':>10} {'bound t/s':>9} "
             f"{'published':>9} {'predicted':>9} {'error %':>8}"]
    for v in rows:
        lines.append(f"{v.board:24} {v.mode:10} {v.runtime:26} {v.model:13} {v.weight_GB:10.2f} {v.bound_tps:9.1f} "
                     f"{v.published_tps:9.1f} {v.predicted_tps:9.1f} {v.error_pct:+8.1f}")
    mean_abs = sum(abs(v.error_pct) for v in rows) / len(rows)
    lines.append(f"mean |error| {mean_abs:.1f}%  (rows: {ROWS_PATH})")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--fit", action="store_true", help="refit bandwidth_efficiency and report leave-one-out")
    args = ap.parse_args()
    cal = calibration()
    print(f"calibration '{cal.name}': bandwidth_efficiency {cal.bandwidth_efficiency}, "
          f"compute_efficiency {cal.compute_efficiency}, kernel gap {cal.kernel_gap_us_per_layer} us/layer")
    print(table(validate(cal)))
    if args.fit:
        eta, rows = fit_bandwidth_efficiency(cal)
        print(f"\nfitted bandwidth_efficiency = {eta}")
        print(table(rows))
        all_rows = load_rows()
        loo = []
        for i in range(len(all_rows)):
            from clone.costmodel import validation as V

            rest = all_rows[:i] + all_rows[i + 1:]
            lo, hi = 0.3, 1.0
            loss = lambda e: sum(math.log(v.predicted_tps / v.published_tps) ** 2  # noqa: E731
                                 for v in V.validate(cal.replace(bandwidth_efficiency=e), rest))
            for _ in range(40):
                a, b = hi - 0.618 * (hi - lo), lo + 0.618 * (hi - lo)
                hi, lo = (b, lo) if loss(a) < loss(b) else (hi, a)
            held = V.validate(cal.replace(bandwidth_efficiency=(lo + hi) / 2), [all_rows[i]])[0]
            loo.append((held, (lo + hi) / 2))
        print("\nleave-one-out (fit on the other rows, predict this one):")
        for v, e in loo:
            print(f"  {v.board:24} {v.model:13} eta {e:.3f}  published {v.published_tps:6.1f}  "
                  f"predicted {v.predicted_tps:6.1f}  error {v.error_pct:+6.1f}%")


if __name__ == "__main__":
    main()
