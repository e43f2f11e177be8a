"""Cost models: predicted latency and energy of a model shape on a target (the t_i, e_i of Eq. 1).

    model = cost_model_for(load_profile("jetson-orin-nano-8gb"))
    report = model.predict(CostShape(config, weight_bits=4), Workload(128, 128), profile.max_clocks())
"""

from clone.costmodel.base import (
    CostModel,
    CostReport,
    CostShape,
    PhaseCost,
    StepCost,
    Workload,
    cost_model_for,
    register_cost_model,
)

__all__ = ["CostModel", "CostReport", "CostShape", "PhaseCost", "StepCost", "Workload", "cost_model_for",
           "register_cost_model"]
