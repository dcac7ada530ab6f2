"""Time compression: `--time-scale K` plays K model seconds per real second.

Every model duration is divided by K and every model rate multiplied by K, consistently,
so the state of the population at model time t is the state of the run at real time t / K.
Preserved: concurrency (users online, waiting, in a chat: Little's law L = lambda W with
lambda x K and W / K). Multiplied by K: arrivals, pairs, messages and reconnects per second.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from .model import Plan


class TimeScale:
    """Converts between model time and real time for one compression factor K."""

    def __init__(self, k: float = 1.0) -> None:
        if isinstance(k, bool) or not isinstance(k, (int, float)) or not math.isfinite(k) or k <= 0:
            raise ValueError(f"time scale must be a positive number, got {k!r}")
        self.k = float(k)

    def __repr__(self) -> str:
        return f"TimeScale({self.k:g})"

    def to_real_s(self, model_s):
        """A model duration or instant (seconds since the plan start) on the real clock."""
        return model_s / self.k

    def to_model_s(self, real_s):
        return real_s * self.k

    def rate_to_real(self, per_model_s):
        """A rate per model second as a rate per real second."""
        return per_model_s * self.k

    def rate_to_model(self, per_real_s):
        return per_real_s / self.k


def plan_to_real(plan: Plan, k: float) -> Plan:
    """The plan on the real clock of a run at time scale K (arrivals and patience / K).

    Chat lengths, typing and message gaps are sampled while the run goes; scale them with
    the same TimeScale (durations / K, rates x K). Applying to an already scaled plan
    composes: the result's time_scale is the product.
    """
    ts = TimeScale(k)
    return dataclasses.replace(
        plan,
        arrival_s=ts.to_real_s(plan.arrival_s),
        patience_s=(plan.patience_s / np.float32(ts.k)).astype(np.float32),
        time_scale=plan.time_scale * ts.k,
    )
