"""The population model: who arrives when, how long they stay, how fast they skip, what
they are interested in, and how some of them abuse the service. Seeded numpy, vectorised.

    from harness.population import PopulationModel, Plan
    plan = PopulationModel(dau=3_000_000).build(seed=1, start_hour=0.0, hours=24.0)
"""
from .model import Plan, PopulationModel
from .params import ABUSE_KINDS, CLASSES, MODES, ParamError, PopulationParams

__all__ = ["ABUSE_KINDS", "CLASSES", "MODES", "ParamError", "Plan", "PopulationModel", "PopulationParams"]
