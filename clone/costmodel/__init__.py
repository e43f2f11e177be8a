"""Latency and energy cost models (the `t_i`, `e_i` of the paper's Eq. 1), shared by the optimizer and
the simulated board. `cost_model_for(profile)` picks the model for a profile; docs/costmodel.md."""

from clone.costmodel.base import (CostModel, CostReport, CostShape, PhaseCost, StepCost, Workload,
                                  cost_model_for, register_cost_model)
from clone.costmodel.roofline import Contention, RooflineCostModel, RuntimeCalibration, calibration

__all__ = ["CostModel", "CostReport", "CostShape", "PhaseCost", "StepCost", "Workload", "cost_model_for",
           "register_cost_model", "Contention", "RooflineCostModel", "RuntimeCalibration", "calibration"]
