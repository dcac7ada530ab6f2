"""Arrival times: a non-homogeneous Poisson process on a diurnal sinusoid, with an optional burst.

Sampling inverts the cumulative intensity: draw N ~ Poisson(Lambda(T)), then N sorted
uniform points on [0, Lambda(T)] (from exponential spacings, so no sort is needed) mapped
back through Lambda^-1. Lambda is tabulated on a fine grid (1 s or finer, with the burst's
corners on the grid, so the piecewise-linear part is exact), which keeps the whole thing a
handful of vectorised numpy calls: millions of arrivals in well under a second.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DAY_S = 86_400.0
HOUR_S = 3_600.0


@dataclass(frozen=True)
class ArrivalCurve:
    """The arrival intensity of a plan window, in model time (seconds since the plan start)."""

    dau: float               # expected arrivals per full day of the sinusoid (its mean rate x 86,400)
    peak_to_trough: float    # ratio of the peak rate to the trough rate (1 = flat)
    peak_hour_utc: float     # hour of day of the peak
    start_hour: float = 0.0  # hour of day (UTC) at model time 0
    burst_multiplier: float = 1.0
    burst_start_s: float = 0.0
    burst_ramp_s: float = 60.0
    burst_hold_s: float = 600.0
    burst_decay_s: float = 300.0

    @property
    def amplitude(self) -> float:
        """Relative amplitude a of 1 + a*cos(...), from (1 + a) / (1 - a) = peak_to_trough."""
        r = self.peak_to_trough
        return (r - 1.0) / (r + 1.0)

    @property
    def mean_rate(self) -> float:
        return self.dau / DAY_S

    def diurnal_rate(self, t: np.ndarray | float) -> np.ndarray:
        """Arrivals per model second of the daily curve alone."""
        hour = self.start_hour + np.asarray(t, dtype=np.float64) / HOUR_S
        return self.mean_rate * (1.0 + self.amplitude * np.cos(2.0 * math.pi * (hour - self.peak_hour_utc) / 24.0))

    def burst_factor(self, t: np.ndarray | float) -> np.ndarray:
        """1 outside the burst; ramps linearly to the multiplier, holds, and decays back."""
        t = np.asarray(t, dtype=np.float64)
        if self.burst_multiplier == 1.0:
            return np.ones_like(t)
        xs, ys = self._burst_corners()
        return 1.0 + (self.burst_multiplier - 1.0) * np.interp(t, xs, ys, left=0.0, right=0.0)

    def _burst_corners(self) -> tuple[np.ndarray, np.ndarray]:
        t0 = self.burst_start_s
        t1 = t0 + self.burst_ramp_s
        t2 = t1 + self.burst_hold_s
        t3 = t2 + self.burst_decay_s
        # np.interp needs non-decreasing xs; a zero-length ramp becomes a step through equal xs.
        return np.array([t0, t1, t2, t3]), np.array([0.0, 1.0, 1.0, 0.0])

    def rate(self, t: np.ndarray | float) -> np.ndarray:
        """Arrivals per model second at model time t."""
        return self.diurnal_rate(t) * self.burst_factor(t)

    def grid(self, duration_s: float, max_step_s: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Grid points and the cumulative intensity Lambda at them (trapezoid rule)."""
        cells = max(1000, int(math.ceil(duration_s / max_step_s)))
        ts = np.linspace(0.0, duration_s, cells + 1)
        if self.burst_multiplier != 1.0:
            corners, _ = self._burst_corners()
            corners = corners[(corners > 0.0) & (corners < duration_s)]
            # a step (zero-length ramp) needs both sides of the jump: add points just around it
            eps = duration_s * 1e-12
            ts = np.unique(np.concatenate([ts, corners, np.clip(corners - eps, 0, duration_s)]))
        lam = self.rate(ts)
        cum = np.empty_like(ts)
        cum[0] = 0.0
        np.cumsum(0.5 * (lam[1:] + lam[:-1]) * np.diff(ts), out=cum[1:])
        return ts, cum

    def expected_count(self, t0: float, t1: float, duration_s: float | None = None) -> float:
        """Expected arrivals in [t0, t1] (model seconds since the plan start)."""
        ts, cum = self.grid(max(t1, duration_s or 0.0))
        return float(np.interp(t1, ts, cum) - np.interp(t0, ts, cum))

    def sample(self, rng: np.random.Generator, duration_s: float) -> np.ndarray:
        """Sorted arrival times (float64, model seconds) of one realisation over [0, duration_s)."""
        if duration_s <= 0 or self.dau <= 0:
            return np.empty(0, dtype=np.float64)
        ts, cum = self.grid(duration_s)
        total = float(cum[-1])
        n = int(rng.poisson(total))
        if n == 0:
            return np.empty(0, dtype=np.float64)
        # n sorted uniforms on (0, total): normalised partial sums of n + 1 exponentials.
        spacings = rng.standard_exponential(n + 1)
        points = np.cumsum(spacings[:-1])
        points *= total / (points[-1] + spacings[-1])
        return np.interp(points, cum, ts)
