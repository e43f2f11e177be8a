"""CLONE: tailor LLM checkpoints to edge boards and serve them latency-aware at least energy.

Subpackages: `clone.model` (Llama-family decoder and checkpoint loaders), `clone.data` (corpora and
calibration sampling), `clone.eval` (perplexity), `clone.profiles` (edge profiles), and the command
line in `clone.cli`. The optimizer, runtime and DVFS controller live in their own subpackages.
"""

__version__ = "0.1.0"
