"""The knobs of the fairness analysis, with the defaults docs/fairness.md explains.

One small frozen dataclass so the live harness, the simulator and the tests all judge a run
by the same rules; `FairnessParams.from_mapping` accepts the `[fairness]` table of a TOML
file or a plain dict and names any unknown key.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class FairnessParams:
    """Rules the matcher is judged by (PROTOCOL.md rule 5 and rule 2) and report thresholds."""

    #: Rule 5: a user with interests becomes open to anyone after this long.
    interest_fallback_s: float = 5.0
    #: Rule 2: two users who parted with `next` are not compatible for this long.
    rematch_block_s: float = 10.0
    #: Clock/network slack: only orderings and deadlines clearer than this are blamed on the matcher.
    fifo_tolerance_s: float = 0.05
    #: A ticket that waited longer than this is starved whatever happened around it.
    starvation_threshold_s: float = 30.0
    #: Cohorts with fewer tickets are reported but left out of the worst-to-best ratio.
    min_cohort_tickets: int = 50
    #: p99 waits below this count as this in the worst-to-best ratio (no division by ~0).
    p99_floor_ms: float = 1.0

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> "FairnessParams":
        values = dict(values or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown fairness parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        out = cls(**values)
        if out.fifo_tolerance_s < 0 or out.interest_fallback_s < 0 or out.rematch_block_s < 0:
            raise ValueError("fairness times must be >= 0")
        return out

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def coerce(params: "FairnessParams | Mapping[str, Any] | None") -> FairnessParams:
    """Accept a FairnessParams, a mapping of overrides, or None (defaults)."""
    if isinstance(params, FairnessParams):
        return params
    return FairnessParams.from_mapping(params)
