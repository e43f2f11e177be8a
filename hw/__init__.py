"""The CLONE accelerator in Amaranth HDL: MAC array, LoRA Processing Unit with its adapter store,
router, DVFS Special Function Unit, AXI interconnect and the command sequencer (see docs/hw-spec.md).
Tests drive the generated Verilog with cocotb from pytest (tests/hw/)."""
