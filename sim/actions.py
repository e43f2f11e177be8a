"""Action counts: what a command does that costs energy, counted per command by the simulator.

A fixed vector of named counters (numpy int64), so that a command class's counts can be multiplied
by its repeat count and summed over a whole LLM without Python loops. Energies per action live in
sim/data/energy_28nm.yaml; sim/energy.py turns counts into joules.
"""
from __future__ import annotations

import numpy as np

# name -> meaning (the energy table has one entry per name, see sim/energy.py)
ACTIONS: dict[str, str] = {
    "mac_int8": "INT8 x INT8 multiply-accumulate into INT32 (MAC array, router dot products)",
    "mac_int4": "INT8 x INT4 multiply-accumulate into INT32 (MAC array, packed INT4 weights)",
    "mac_lora_b": "INT16 x INT8 multiply-accumulate of the LoRA B pass",
    "abuf_rd": "ABUF word reads (N bytes)",
    "abuf_wr": "ABUF word writes",
    "wbuf_rd": "WBUF word reads (N*N bytes)",
    "wbuf_wr": "WBUF word writes",
    "obuf_rd": "OBUF word reads (4N bytes)",
    "obuf_wr": "OBUF word writes",
    "emb_rd": "EMB word reads (N bytes)",
    "emb_wr": "EMB word writes",
    "envm_rd": "eNVM adapter-store word reads (N bytes)",
    "envm_wr": "eNVM adapter-store word writes (N bytes, T_W cycles each)",
    "link_in_B": "bytes received over s_axis (host DRAM read + link)",
    "link_out_B": "bytes sent over m_axis (link + host DRAM write)",
    "iter_step": "divider / square-root iteration steps (router)",
    "ldo_step": "LDO 10 mV voltage-code steps",
    "pll_relock": "ADPLL relocks",
    "command": "descriptors decoded (queue pop, decode, register updates)",
    "cycle": "clocked cycles of the sequencer (clock tree and control while busy or idle)",
}
NAMES = tuple(ACTIONS)
INDEX = {n: i for i, n in enumerate(NAMES)}


def zeros() -> np.ndarray:
    return np.zeros(len(NAMES), dtype=np.int64)


def vector(**counts: int) -> np.ndarray:
    v = zeros()
    for k, n in counts.items():
        v[INDEX[k]] += int(n)
    return v


def as_dict(v: np.ndarray) -> dict[str, int]:
    return {n: int(v[i]) for i, n in enumerate(NAMES)}
