"""The CI gate: thresholds and baselines applied to a results dict.

`gate_results` is the one call for callers that already hold results in memory (for
example `chatload run --gate`); `chatload gate` wraps it for a results file.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.gate.baseline import BaselineError, environment_notes, load_baseline
from harness.gate.evaluate import CheckResult, all_passed, evaluate
from harness.gate.thresholds import GateConfig, ThresholdsError, load_thresholds

__all__ = [
    "BaselineError", "CheckResult", "GateError", "ThresholdsError", "evaluate", "gate_results", "run_gate",
]

#: Usage problems (bad thresholds file, bad baseline): callers map these to exit code 2.
GateError = (ThresholdsError, BaselineError)


def run_gate(
    results: Mapping[str, Any],
    thresholds_path: str | Path,
    baseline_path: str | Path | None = None,
    junit_path: str | Path | None = None,
    verbose: bool = False,
) -> tuple[list[CheckResult], str]:
    """Evaluate, render the table, write JUnit if asked; returns (outcomes, table)."""
    from harness.gate import junit, table

    config: GateConfig = load_thresholds(thresholds_path)
    notes: list[str] = []
    runs = None
    properties = {"thresholds": Path(thresholds_path).name}
    if baseline_path is not None:
        base = load_baseline(baseline_path)
        runs = base.runs
        notes += environment_notes(base.environment)
        properties["baseline"] = Path(baseline_path).name
        properties["baseline_runs"] = str(len(base.runs))
    elif config.has_relative:
        notes.append("relative checks skipped: no baseline given (--baseline BASE.json)")
    run_info = results.get("run") if isinstance(results.get("run"), Mapping) else {}
    for key in ("scenario", "target", "seed", "started"):
        if key in run_info:
            properties[f"run.{key}"] = str(run_info[key])
    outcomes = evaluate(results, config, runs)
    if junit_path is not None:
        junit.write(junit_path, outcomes, properties)
    return outcomes, table.render(outcomes, verbose=verbose, notes=notes)


def gate_results(
    results: dict,
    thresholds_path: str | Path,
    baseline_path: str | Path | None = None,
    junit_path: str | Path | None = None,
) -> tuple[bool, str]:
    """Gate an in-memory results dict: (all checks passed, printable table).

    Raises ThresholdsError or BaselineError (both ValueError; `GateError` is the tuple)
    for a bad thresholds or baseline file, which a command reports with exit code 2.
    """
    outcomes, text = run_gate(results, thresholds_path, baseline_path, junit_path)
    return all_passed(outcomes), text
