"""Figures from sweep tables (matplotlib, PNG and SVG): `clone plot RESULTS.csv --kind KIND`.

Each plot kind reads the columns its sweep kind writes and ignores rows whose point failed (their
`error` is set), so a sweep with a few failed points still plots. Figures are written to a
temporary name and renamed, like the tables.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from clone.errors import CloneError

FORMATS = ("png", "svg")
METHOD_ORDER = ("clone", "uniform", "random", "shortgpt", "flap")
METHOD_LABEL = {"clone": "CLONE (search)", "uniform": "uniform (LLM-Pruner)", "random": "random",
                "shortgpt": "ShortGPT", "flap": "FLAP"}
POLICY_STYLE = {"max": ("s", "tab:red"), "governor": ("v", "tab:orange"), "best-fixed": ("D", "tab:purple"),
                "clone": ("*", "tab:green"), "oracle": ("P", "tab:blue")}


# ------------------------------------------------------------------------------ helpers
def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "font.size": 9, "axes.grid": True, "grid.alpha": 0.3,
                         "figure.dpi": 100, "savefig.dpi": 100, "legend.fontsize": 7,
                         "svg.hashsalt": "clone"})  # SVG element ids fixed: regenerating a figure changes no bytes
    return plt


def plain_log(ax: Any, axis: str = "y") -> None:
    """Log scale with plain numbers (2, 5, 10, 20) instead of 2x10^0 labels."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    fmt = FuncFormatter(lambda v, _: f"{v:g}")
    target = ax.yaxis if axis == "y" else ax.xaxis
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    target.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    target.set_major_formatter(fmt)
    target.set_minor_formatter(FuncFormatter(lambda v, _: ""))


def ok_rows(df: pd.DataFrame) -> pd.DataFrame:
    from clone.sweep.runner import error_text

    return df[[not e for e in error_text(df)]]


def pareto_front(x: list[float], y: list[float]) -> list[int]:
    """Indices of the points no other point beats in both x and y (lower is better), by increasing x."""
    order = sorted(range(len(x)), key=lambda i: (x[i], y[i]))
    front, best = [], math.inf
    for i in order:
        if y[i] < best:
            front.append(i)
            best = y[i]
    return front


def _first(df: pd.DataFrame, col: str) -> Any:
    return df[col].iloc[0] if len(df) else None


# ------------------------------------------------------------------------------ plot kinds
def plot_clocks(df: pd.DataFrame) -> Any:
    """Prefill and decode latency and energy against the GPU clock, one line per memory clock."""
    plt = _plt()
    df = df[(df["model"] == _first(df, "model")) & (df["weight_bits"] == _first(df, "weight_bits"))]
    profiles = list(dict.fromkeys(df["profile"]))
    metrics = [("ttft_s", 1e3, "prefill latency (ms)"), ("prefill_J", 1.0, "prefill energy (J)"),
               ("tpot_s", 1e3, "decode latency, TPOT (ms)"), ("decode_J_per_token", 1e3, "decode energy (mJ/token)")]
    fig, axes = plt.subplots(len(metrics), len(profiles), figsize=(3.6 * len(profiles), 2.4 * len(metrics)),
                             squeeze=False, sharex="col")
    cmap = plt.get_cmap("viridis")
    for j, prof in enumerate(profiles):
        d = df[df["profile"] == prof]
        d = d[d["cpu_MHz"] == d["cpu_MHz"].max()]
        emcs = sorted(d["emc_MHz"].unique())
        for i, (col, scale, label) in enumerate(metrics):
            ax = axes[i][j]
            for k, emc in enumerate(emcs):
                e = d[d["emc_MHz"] == emc].sort_values("gpu_MHz")
                ax.plot(e["gpu_MHz"], e[col] * scale, marker="o", ms=3, color=cmap(k / max(len(emcs) - 1, 1)),
                        label=f"EMC {emc:g} MHz")
            plain_log(ax)
            if j == 0:
                ax.set_ylabel(label)
            if i == 0:
                ax.set_title(f"{prof} ({_first(d, 'mode')})")
            if i == len(metrics) - 1:
                ax.set_xlabel("GPU clock (MHz)")
        axes[0][j].legend(loc="best")
    fig.suptitle(f"{_first(df, 'model')} W{_first(df, 'weight_bits')}, prompt {_first(df, 'prompt_tokens')} tokens, "
                 f"{_first(df, 'output_tokens')} output tokens (roofline cost model, CPU at its top clock)")
    return fig


def plot_pruning(df: pd.DataFrame) -> Any:
    """Perplexity, latency and energy against the pruning ratio, one line per method; ratio 0 is dense."""
    plt = _plt()
    dense = df[df["method"] == "dense"]
    metrics = [("ppl", 1.0, "perplexity (log)", True), ("tpot_s", 1e3, "decode TPOT (ms), predicted", False),
               ("energy_J", 1.0, "energy per request (J), predicted", False)]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    methods = [m for m in METHOD_ORDER if m in set(df["method"])] + sorted(set(df["method"]) - set(METHOD_ORDER) - {"dense"})
    for ax, (col, scale, label, log) in zip(axes[0], metrics):
        for k, meth in enumerate(methods):
            d = pd.concat([dense, df[df["method"] == meth]]).sort_values("ratio")
            ax.plot(d["ratio"], d[col] * scale, marker="o", ms=4, label=_method_label(df, meth),
                    color=plt.get_cmap("tab10")(k), lw=2.2 if meth == "clone" else 1.2)
        if log:
            plain_log(ax)
        ax.set_xlabel("parameters removed (target ratio)")
        ax.set_ylabel(label)
    axes[0][0].legend(loc="best")
    fig.suptitle(f"{_first(df, 'model')}: perplexity on {_first(df, 'corpus')} {_first(df, 'split')} "
                 f"({_first(df, 'max_tokens')} tokens, {_first(df, 'seq_len')}-token windows); cost on "
                 f"{_first(df, 'profile')} ({_first(df, 'mode')}), fp16")
    fig.tight_layout()
    return fig


def _method_label(df: pd.DataFrame, method: str) -> str:
    """The method's name, plus its layer split when it is not the balanced default (the same ratios
    split by importance are a different pruner)."""
    label = METHOD_LABEL.get(method, method)
    splits = set(df.loc[df["method"] == method, "layer_split"]) if "layer_split" in df else set()
    return f"{label}, importance split" if splits == {"importance"} and method not in ("shortgpt", "flap") else label


def _group_label(g: int) -> str:
    return "per-channel" if g == 0 else f"g{g}"


def plot_quant(df: pd.DataFrame) -> Any:
    """Perplexity and memory against the group size, one line per bit width (and method)."""
    plt = _plt()
    fp = df[df["bits"] == 16]
    q = df[df["bits"] < 16]
    groups = sorted(q["group_size"].unique(), key=lambda g: (g != 0, g))
    xs = {g: i for i, g in enumerate(groups)}
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), squeeze=False)
    series = q.groupby(["bits", "method", "symmetric", "act_order"], sort=True)
    for k, ((bits, method, sym, act), d) in enumerate(series):
        d = d.sort_values("group_size", key=lambda s: s.map(xs))
        label = f"INT{bits} {method.upper()}{' sym' if sym else ''}{' act-order' if act else ''}"
        style = dict(marker="o" if method == "rtn" else "s", ms=5, ls="-" if method == "rtn" else "--",
                     color=plt.get_cmap("tab10")(k), label=label)
        axes[0][0].plot(d["group_size"].map(xs), d["ppl"], **style)
        axes[0][1].plot(d["group_size"].map(xs), d["deployed_MB"], **style)
    for ax, col in ((axes[0][0], "ppl"), (axes[0][1], "deployed_MB")):
        if len(fp):
            ax.axhline(float(fp[col].iloc[0]), color="black", ls=":", lw=1, label="fp16 / float")
        ax.set_xticks(range(len(groups)), [_group_label(int(g)) for g in groups])
        ax.set_xlabel("quantization group (input columns per scale)")
    axes[0][0].set_ylabel("perplexity")
    axes[0][1].set_ylabel("weights as deployed (MB, float tensors fp16)")
    axes[0][0].legend(loc="best")
    fig.suptitle(f"{_first(df, 'model')}: weight-only quantization of the decoder projections "
                 f"({_first(df, 'corpus')} {_first(df, 'split')}, {_first(df, 'max_tokens')} tokens)")
    fig.tight_layout()
    return fig


def _accel(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    is_accel = df["array"].notna() & (df["array"].astype(str) != "")
    return df[is_accel], df[~is_accel]


def plot_accel_points(df: pd.DataFrame) -> Any:
    """Energy per decode token and TPOT against the accelerator's operating point; boards as lines."""
    plt = _plt()
    acc, boards = _accel(df)
    if len(acc):
        acc = acc[acc["array"] == acc["array"].mode().iloc[0]]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), squeeze=False)
    for k, (bits, d) in enumerate(acc.groupby("weight_bits")):
        d = d.sort_values("freq_MHz")
        color = plt.get_cmap("tab10")(k)
        axes[0][0].plot(d["freq_MHz"], d["decode_J_per_token"] * 1e3, "o-", color=color, ms=4,
                        label=f"accelerator INT{bits}")
        axes[0][1].plot(d["freq_MHz"], d["tpot_s"] * 1e3, "o-", color=color, ms=4, label=f"accelerator INT{bits}")
        for _, b in boards[boards["weight_bits"] == bits].iterrows():
            for ax, col, scale in ((axes[0][0], "decode_J_per_token", 1e3), (axes[0][1], "tpot_s", 1e3)):
                ax.axhline(b[col] * scale, color=color, ls="--", lw=1,
                           label=f"{b['profile']} {b['mode']} INT{bits}")
    axes[0][0].set_ylabel("decode energy (mJ/token)")
    axes[0][1].set_ylabel("decode TPOT (ms)")
    plain_log(axes[0][1])
    for ax in axes[0]:
        ax.set_xlabel("operating point frequency (MHz)")
        ax.legend(loc="best")
    if len(acc):
        pts = acc.drop_duplicates("point").sort_values("freq_MHz")
        top = axes[0][0].secondary_xaxis("top")
        top.set_xticks(list(pts["freq_MHz"])[::3], [f"{v:.2f} V" for v in list(pts["voltage_V"])[::3]])
    fig.suptitle(f"{_first(df, 'model')} on the CLONE accelerator ({_first(acc, 'array')} array; prompt "
                 f"{_first(df, 'prompt_tokens')}, {_first(df, 'output_tokens')} tokens); dashed: boards at top clocks")
    fig.tight_layout()
    return fig


def plot_accel_arrays(df: pd.DataFrame) -> Any:
    """Latency, energy and area against the MAC array size at one operating point."""
    plt = _plt()
    acc, _ = _accel(df)
    by_point = acc.groupby(["point", "weight_bits"])["array"].nunique()
    point, bits = by_point.idxmax() if len(by_point) else (None, None)
    d = acc[(acc["point"] == point) & (acc["weight_bits"] == bits)].copy()
    d["n"] = d["array"].astype(str).str.split("x").str[0].astype(int)
    d = d.sort_values("n")
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5), squeeze=False)
    ax = axes[0]
    ax[0].plot(d["n"], d["ttft_s"] * 1e3, "o-", label="prefill (TTFT)")
    ax[0].plot(d["n"], d["tpot_s"] * 1e3, "s-", label="decode (TPOT)")
    ax[0].set_ylabel("latency (ms)")
    plain_log(ax[0])
    ax[1].plot(d["n"], d["prefill_J"] * 1e3, "o-", label="prefill (mJ)")
    ax[1].plot(d["n"], d["decode_J_per_token"] * 1e3, "s-", label="decode (mJ/token)")
    ax[1].set_ylabel("energy (mJ)")
    ax[2].plot(d["n"], d["area_mm2"], "o-", label="total")
    ax[2].plot(d["n"], d["area_array_mm2"], "s-", label="MAC array")
    ax[2].plot(d["n"], d["area_memory_mm2"], "^-", label="SRAM + eNVM macros")
    ax[2].set_ylabel("area (mm^2, 28 nm estimate)")
    for a in ax:
        a.set_xscale("log", base=2)
        a.set_xticks(list(d["n"]), [f"{n}x{n}" for n in d["n"]])
        a.set_xlabel("MAC array")
        a.legend(loc="best")
    fig.suptitle(f"{_first(df, 'model')} INT{bits} at {point}: array size (buffers fixed in KiB)")
    fig.tight_layout()
    return fig


def plot_pareto(df: pd.DataFrame) -> Any:
    """Energy per token against mean request latency: every fixed clock setting (grey), their Pareto
    front, and where each policy lands."""
    plt = _plt()
    profiles = list(dict.fromkeys(df["profile"]))
    fig, axes = plt.subplots(1, len(profiles), figsize=(4.6 * len(profiles), 4.0), squeeze=False)
    for ax, prof in zip(axes[0], profiles):
        d = df[df["profile"] == prof]
        st = d[d["policy"] == "static"]
        ax.scatter(st["e2e_mean_s"], st["J_per_token"], s=10, color="0.7", label="fixed clocks")
        front = [st.index[i] for i in pareto_front(list(st["e2e_mean_s"]), list(st["J_per_token"]))]
        f = st.loc[front]
        ax.plot(f["e2e_mean_s"], f["J_per_token"], "-", color="0.3", lw=1.2, label="Pareto front (fixed)")
        for _, r in d[d["policy"] != "static"].iterrows():
            marker, color = POLICY_STYLE.get(r["policy"], ("o", "black"))
            ax.scatter([r["e2e_mean_s"]], [r["J_per_token"]], marker=marker, s=70, color=color, zorder=3,
                       label=f"{r['policy']} ({r['met_pct']:.0f}% met)")
        plain_log(ax, "x")
        plain_log(ax, "y")
        ax.set_xlabel("mean request latency, TTFT + TPOT x (N-1) (s)")
        ax.set_ylabel("energy (J/token)")
        ax.set_title(f"{prof} ({_first(d, 'mode')})")
        ax.legend(loc="upper center", ncol=2)
    fig.suptitle(f"{_first(df, 'model')} W{_first(df, 'weight_bits')}, trace {_first(df, 'trace')}, "
                 f"{_first(df, 'interference')} co-runner (simulated board)")
    fig.tight_layout()
    return fig


PlotFn = Callable[[pd.DataFrame], Any]
PLOT_KINDS: dict[str, tuple[PlotFn, tuple[str, ...]]] = {
    "clocks": (plot_clocks, ("profile", "mode", "gpu_MHz", "emc_MHz", "cpu_MHz", "ttft_s", "prefill_J", "tpot_s",
                             "decode_J_per_token")),
    "pruning": (plot_pruning, ("method", "ratio", "ppl", "tpot_s", "energy_J")),
    "quant": (plot_quant, ("bits", "group_size", "method", "symmetric", "act_order", "ppl", "deployed_MB")),
    "accel-points": (plot_accel_points, ("profile", "array", "point", "weight_bits", "freq_MHz", "voltage_V",
                                         "decode_J_per_token", "tpot_s")),
    "accel-arrays": (plot_accel_arrays, ("array", "point", "weight_bits", "ttft_s", "tpot_s", "prefill_J",
                                         "decode_J_per_token", "area_mm2", "area_array_mm2", "area_memory_mm2")),
    "pareto": (plot_pareto, ("profile", "policy", "e2e_mean_s", "J_per_token", "met_pct")),
}


# ------------------------------------------------------------------------------ entry points
def read_results(path: str | Path) -> pd.DataFrame:
    p = Path(path)
    try:
        df = pd.read_csv(p)
    except FileNotFoundError:
        raise CloneError(f"{p}: no such results table (run clone sweep CONFIG first)") from None
    except (ValueError, OSError) as exc:
        raise CloneError(f"{p}: cannot read the results table ({exc})") from None
    if "kind" not in df.columns:
        raise CloneError(f"{p}: not a sweep table (no kind column)")
    return df


def default_kinds(df: pd.DataFrame) -> tuple[str, ...]:
    from clone.sweep.kinds import get_kind

    kinds = list(dict.fromkeys(df["kind"].dropna().astype(str)))
    if len(kinds) != 1:
        raise CloneError(f"the table holds sweep kinds {kinds}; give --kind")
    return get_kind(kinds[0]).plots


def figure_stem(table: Path, kind: str) -> str:
    """clocks.csv + clocks -> clocks; accel.csv + accel-points -> accel-points; x.csv + pareto -> x-pareto."""
    base = table.name.removesuffix(".csv").removesuffix(".quick")
    return kind if kind == base or kind.startswith(base + "-") else f"{base}-{kind}"


def save(fig: Any, out_dir: Path, stem: str, formats: tuple[str, ...] = FORMATS) -> list[Path]:
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        target = out_dir / f"{stem}.{fmt}"
        tmp = out_dir / f".{stem}.tmp.{fmt}"
        fig.savefig(tmp, format=fmt, bbox_inches="tight", metadata={"Date": None} if fmt == "svg" else None)
        os.replace(tmp, target)
        paths.append(target)
    plt.close(fig)
    return paths


def plot_results(path: str | Path, kinds: list[str] | tuple[str, ...] | None = None, out_dir: str | Path | None = None,
                 formats: tuple[str, ...] = FORMATS) -> list[Path]:
    """Draw `kinds` (default: the sweep kind's figures) from a table; returns the files written."""
    table = Path(path)
    df = read_results(table)
    kinds = tuple(kinds) if kinds else default_kinds(df)
    for fmt in formats:
        if fmt not in FORMATS:
            raise CloneError(f"--format {fmt!r} is not supported (allowed: {', '.join(FORMATS)})")
    rows = ok_rows(df)
    written: list[Path] = []
    for kind in kinds:
        if kind not in PLOT_KINDS:
            raise CloneError(f"--kind {kind!r} is not a plot kind (allowed: {', '.join(PLOT_KINDS)})")
        fn, needs = PLOT_KINDS[kind]
        missing = [c for c in needs if c not in df.columns]
        if missing:
            raise CloneError(f"{table}: plot kind {kind} needs column(s) {', '.join(missing)} "
                             f"(this table is of sweep kind {', '.join(map(str, df['kind'].unique()))})")
        if rows.empty:
            raise CloneError(f"{table}: no successful points to plot ({len(df)} rows, all with errors)")
        written += save(fn(rows), Path(out_dir) if out_dir else table.parent, figure_stem(table, kind), formats)
    return written
