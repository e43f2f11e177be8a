"""Parameter sweeps: YAML configs (experiments/sweeps/) expanded into points of a kind, run in a local
process pool or on Ray, collected into tidy tables that resume; `clone.sweep.plot` draws them."""
