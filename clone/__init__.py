"""CLONE: tailor LLM checkpoints to edge boards and serve them latency-aware at least energy.

Subpackages: `clone.model` (Llama-family decoder and checkpoint loaders), `clone.data` (corpora and
calibration sampling), `clone.eval` (perplexity), `clone.profiles` (edge profiles), and the command
line in `clone.cli`. The optimizer, runtime and DVFS controller live in their own subpackages.
"""

import os

# OpenMP threads that spin while waiting collapse when the two cores of an edge CPU or a shared
# machine are busy with anything else (a forward pass measured 9x slower here); sleeping threads
# cost little when the CPU is idle. Must be set before torch loads its OpenMP runtime.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
