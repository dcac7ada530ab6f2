"""Evaluate gate checks against a results dict (and an optional baseline): pure, no I/O.

Absolute checks compare the figure with a number. Relative checks compare it with a
factor of the baseline's figure; for latency percentiles with raw histograms on both
sides the comparison is noise-aware (see harness.gate.noise): it fails only when the
current run's confidence interval lies wholly beyond the bound taken from the baseline's
interval. Every outcome carries a human-readable `detail` saying why.
"""
from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.gate.noise import baseline_interval, percentile_interval, as_histogram
from harness.gate.paths import MISSING, as_number, histogram_for, is_latency_section, lookup, percentile_of
from harness.gate.thresholds import Check, GateConfig

COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
    "==": operator.eq, "!=": operator.ne,
}


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome. `bound` is the nominal bound (the absolute value, or factor x
    baseline); `within_noise` marks a relative check that misses the nominal bound but not
    beyond the noise, so it passes."""

    name: str
    value: float | None
    bound: float | None
    passed: bool
    detail: str
    skipped: bool = False
    metric: str = ""
    op: str = ""
    within_noise: bool = False

    @property
    def status(self) -> str:
        return "skip" if self.skipped else "pass" if self.passed else "fail"


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else f"{v:.6g}"


def _missing(check: Check, what: str, value: float | None = None, bound: float | None = None) -> CheckResult:
    bound = check.value if bound is None else bound
    if check.optional:
        return CheckResult(check.name, value, bound, True, f"skipped: {what} (optional)", skipped=True,
                           metric=check.metric, op=check.op)
    return CheckResult(check.name, value, bound, False, f"missing: {what}", metric=check.metric, op=check.op)


def _current_value(results: Mapping[str, Any], check: Check) -> tuple[float | None, CheckResult | None]:
    raw = lookup(results, check.metric)
    if raw is MISSING:
        return None, _missing(check, f"no figure at {check.metric!r} in the results")
    value = as_number(raw)
    if value is None:
        return None, CheckResult(check.name, None, check.value, False,
                                 f"not a number: {check.metric!r} is {raw!r}", metric=check.metric, op=check.op)
    return value, None


def evaluate_absolute(results: Mapping[str, Any], check: Check) -> CheckResult:
    value, problem = _current_value(results, check)
    if problem is not None:
        return problem
    assert value is not None and check.value is not None
    passed = COMPARE[check.op](value, check.value)
    detail = "" if passed else f"{_fmt(value)} is not {check.op} {_fmt(check.value)}"
    return CheckResult(check.name, value, check.value, passed, detail, metric=check.metric, op=check.op)


def _histograms(runs: Sequence[Mapping[str, Any]], section: str) -> list[Mapping[str, Any]] | None:
    found = [histogram_for(r, section) for r in runs]
    if not found or any(h is None for h in found):
        return None
    return [h for h in found if h is not None]


def evaluate_relative(
    results: Mapping[str, Any], check: Check, baseline: Sequence[Mapping[str, Any]] | None, mode: str
) -> CheckResult:
    if not baseline:
        return CheckResult(check.name, None, None, True, "skipped: no baseline given", skipped=True,
                           metric=check.metric, op=check.op)
    value, problem = _current_value(results, check)
    if problem is not None:
        return problem
    assert value is not None and check.relative is not None
    factor, upper = check.relative, check.op in ("<", "<=")
    base_values = [as_number(lookup(run, check.metric)) for run in baseline]
    numbers = [v for v in base_values if v is not None]
    if not numbers:
        return _missing(check, f"no figure at {check.metric!r} in the baseline", value=value)
    base_point = max(numbers) if upper else min(numbers)
    runs_note = f" (worst of {len(numbers)} baseline runs)" if len(numbers) > 1 else ""
    compare = COMPARE[check.op]

    section, _, leaf = check.metric.partition(".")
    q = percentile_of(leaf) if is_latency_section(section) else None
    cur_hist = histogram_for(results, section) if q is not None else None
    base_hists = _histograms(baseline, section) if q is not None else None
    if check.noise and q is not None and cur_hist is not None and base_hists is not None:
        cur_iv = percentile_interval(as_histogram(cur_hist), q, check.confidence)
        base_iv = baseline_interval(base_hists, q, check.confidence, mode, upper)
        if cur_iv is not None and base_iv is not None:
            if mode == "pooled" and len(base_hists) > 1:
                base_point, runs_note = base_iv.point, f" (pooled {len(base_hists)} baseline runs)"
            bound = factor * base_point
            nominal = compare(value, bound)
            if upper:
                limit = factor * base_iv.hi + check.min_delta
                passed = compare(cur_iv.lo, limit)
                edge, base_edge = cur_iv.lo, "upper"
            else:
                limit = factor * base_iv.lo - check.min_delta
                passed = compare(cur_iv.hi, limit)
                edge, base_edge = cur_iv.hi, "lower"
            delta = f" {'+' if upper else '-'} {_fmt(check.min_delta)}" if check.min_delta else ""
            detail = (
                f"current {_fmt(value)} {cur_iv.text(check.confidence)}; baseline {_fmt(base_point)}"
                f"{runs_note} {base_iv.text(check.confidence)}; noise-aware limit {_fmt(factor)} x"
                f" baseline {base_edge} end{delta} = {_fmt(limit)}; current CI "
                f"{'lower' if upper else 'upper'} end {_fmt(edge)}"
                f" {'is' if passed else 'is not'} {check.op} {_fmt(limit)}"
            )
            return CheckResult(check.name, value, bound, passed, detail, metric=check.metric, op=check.op,
                               within_noise=passed and not nominal)

    # Point comparison: not a percentile, no raw histograms, or noise = false.
    bound = factor * base_point
    limit = bound + check.min_delta if upper else bound - check.min_delta
    nominal = compare(value, bound)
    passed = compare(value, limit)
    why = "noise = false" if not check.noise else "no raw histograms" if q is not None else "not a percentile"
    delta = f" {'+' if upper else '-'} {_fmt(check.min_delta)}" if check.min_delta else ""
    detail = (
        f"point comparison ({why}): current {_fmt(value)} vs {_fmt(factor)} x baseline"
        f" {_fmt(base_point)}{runs_note}{delta} = {_fmt(limit)}"
    )
    return CheckResult(check.name, value, bound, passed, detail, metric=check.metric, op=check.op,
                       within_noise=passed and not nominal)


def evaluate(
    results: Mapping[str, Any],
    config: GateConfig | Sequence[Check],
    baseline: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None = None,
) -> list[CheckResult]:
    """Every check's outcome, in the order of the thresholds file.

    `baseline` is one results dict or a list of them (repeated runs); None skips the
    relative checks (reported as skipped, never silently dropped).
    """
    checks = config.checks if isinstance(config, GateConfig) else tuple(config)
    mode = config.baseline_runs if isinstance(config, GateConfig) else "envelope"
    runs: list[Mapping[str, Any]] | None
    if baseline is None:
        runs = None
    elif isinstance(baseline, Mapping):
        runs = [baseline]
    else:
        runs = list(baseline)
    out = []
    for check in checks:
        if check.is_relative:
            out.append(evaluate_relative(results, check, runs, mode))
        else:
            out.append(evaluate_absolute(results, check))
    return out


def all_passed(outcomes: Sequence[CheckResult]) -> bool:
    return all(o.passed for o in outcomes)
