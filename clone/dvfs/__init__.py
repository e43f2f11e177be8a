"""Learned DVFS (PAPER.md section 2; docs/dvfs.md): power tables, an output-length predictor, a small
MLP clock controller trained by REINFORCE on the simulated board, and reference policies (max clocks,
governor, best fixed clocks, oracle)."""
