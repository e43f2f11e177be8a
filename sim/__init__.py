"""Cycle-level simulator and 28 nm energy model of the accelerator in hw/. It executes the same
command descriptors as the RTL and must agree with it cycle for cycle (docs/hw-spec.md is the
contract); it also maps whole LLM workloads to commands and costs them."""
