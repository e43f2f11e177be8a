"""`clone profiles list | show NAME`: print the edge profiles so a user can pick a target and check
its numbers (and their sources) before optimizing for it."""

from __future__ import annotations

import argparse

from clone.profiles import AcceleratorProfile, Profile, list_profiles, load_profile


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "profiles", help="list edge profiles or show one", description=__doc__
    )
    sub = parser.add_subparsers(dest="profiles_command", metavar="ACTION", required=True)
    p_list = sub.add_parser("list", help="table of the profiles in edge_profiles/")
    p_list.set_defaults(func=run_list)
    p_show = sub.add_parser("show", help="every field of one profile, with units and sources")
    p_show.add_argument("name", metavar="NAME", help="profile name (see `clone profiles list`) or a YAML path")
    p_show.set_defaults(func=run_show)


def _row(name: str) -> list[str]:
    prof = load_profile(name)
    label = name + (" *" if prof.placeholder else "")
    if isinstance(prof, Profile):
        return [label, prof.kind, f"{prof.memory.memory_GB:g} GB",
                f"{prof.memory.dram_bandwidth_GBps:g} GB/s", ", ".join(prof.mode_names)]
    return [label, prof.kind, "-", f"{prof.host_link['link_bandwidth_GBps']:g} GB/s (link)",
            f"{len(prof.operating_points)} V/f points"]


def run_list(args: argparse.Namespace) -> int:
    rows = [["NAME", "KIND", "MEMORY", "BANDWIDTH", "MODES"]] + [_row(n) for n in list_profiles()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    if any(load_profile(n).placeholder for n in list_profiles()):
        print("* placeholder values")
    return 0


def run_show(args: argparse.Namespace) -> int:
    prof = load_profile(args.name)
    lines = show_board(prof) if isinstance(prof, Profile) else show_accelerator(prof)
    print("\n".join(lines))
    return 0


def _sources(prof: Profile | AcceleratorProfile) -> list[str]:
    out = ["", "sources:"]
    for key, text in prof.sources.items():
        out.append(f"  {key}: {' '.join(text.split())}")
    return out


def show_board(p: Profile) -> list[str]:
    m, c, pm = p.memory, p.compute, p.power_model
    out = [
        f"{p.name} ({p.kind}): {p.description}",
        f"file: {p.path}",
        "",
        f"memory: {m.memory_GB:g} GB {m.dram_type}, {m.bus_width_bits}-bit, "
        f"{m.dram_bandwidth_GBps:g} GB/s peak, {m.reserved_GB:g} GB reserved "
        f"({m.usable_GB:g} GB usable)",
        f"compute: {c.gpu_arch}, {c.cuda_cores} CUDA cores, {c.tensor_cores} tensor cores; "
        f"{c.cpu_cores}x {c.cpu_arch}",
        "  peak at GPU {:g} MHz: {}".format(
            c.peak_TOPS_gpu_MHz, ", ".join(f"{k} {v:g} TOPS" for k, v in c.peak_TOPS.items())),
        "",
        "clocks (MHz):",
    ]
    for d in ("gpu", "emc", "cpu"):
        out.append(f"  {d}: " + ", ".join(f"{f:g}" for f in p.clocks.table(d)))
    out += ["", f"power modes (default {p.default_mode}):",
            "  {:<11} {:>3} {:>8} {:>9} {:>9} {:>9} {:>5} {:>10} {:>10} {:>11}".format(
                "name", "id", "budget W", "GPU MHz", "EMC MHz", "CPU MHz", "cores", "DRAM GB/s",
                "int8 TOPS", "model max W")]
    for mode in p.modes:
        out.append("  {:<11} {:>3} {:>8g} {:>9g} {:>9g} {:>9g} {:>5} {:>10.1f} {:>10.1f} {:>11.1f}".format(
            mode.name, mode.nvpmodel_id, mode.power_budget_W, mode.gpu_max_MHz, mode.emc_max_MHz,
            mode.cpu_max_MHz, mode.cpu_online_cores, p.bandwidth_GBps(mode.name),
            p.peak_TOPS("int8", mode.name), p.max_power_W(mode.name)))
    out += ["", f"power model: P = idle {pm.idle_W:g} W + sum over gpu/emc/cpu of "
            "C*V(f)^2*f*(a + (1-a)*util) - C*V(fmin)^2*fmin*a;  "
            f"module rating {pm.max_module_power_W:g} W"]
    for d in ("gpu", "emc", "cpu"):
        dp = pm.domain(d)
        vf = ", ".join(f"{f:g} MHz {v:.2f} V" for f, v in zip(dp.vf_MHz, dp.vf_V))
        out.append(f"  {d}: {dp.dynamic_max_W:g} W at {dp.f_max_MHz:g} MHz full load, "
                   f"C {dp.ceff_nF:.2f} nF, idle activity {dp.idle_activity_fraction:g}; V(f): {vf}")
    rails = p.power_rails
    out += ["", f"power rails ({rails.sensor}; module rail: {rails.module_rail or 'sum of rails'}):"]
    out += [f"  {k}: {v}" for k, v in rails.rails.items()]
    for jp, s in p.sysfs.items():
        out += ["", f"sysfs (JetPack {jp}):"]
        for k in s.__dataclass_fields__:
            v = getattr(s, k)
            if k != "jetpack":
                out.append(f"  {k}: {', '.join(v) if isinstance(v, tuple) else v}")
    out += ["", f"latency budgets (default {p.default_app_class}):"]
    for b in p.budgets.values():
        out.append(f"  {b.app_class:<16} TTFT {b.ttft_ms:>7g} ms  TPOT {b.tpot_ms:>6g} ms  "
                   f"{b.description}")
    return out + _sources(p)


def show_accelerator(a: AcceleratorProfile) -> list[str]:
    out = [f"{a.name} ({a.kind}): {a.description}", f"file: {a.path}"]
    if a.placeholder:
        out.append(f"PLACEHOLDER: {' '.join((a.placeholder_note or '').split())}")
    for title, section in (("technology", a.technology), ("host link", a.host_link),
                           ("array", a.array), ("buffers", a.buffers), ("energy", a.energy)):
        out += ["", f"{title}:"] + [f"  {k}: {v}" for k, v in section.items()]
    out += ["", f"operating points (default {a.default_point}; peak "
            f"{a.peak_TOPS():.3f} TOPS int8 there):"]
    out += [f"  {pt.name:<4} {pt.freq_MHz:>6g} MHz  {pt.voltage_V:.2f} V" for pt in a.operating_points]
    return out + _sources(a)
