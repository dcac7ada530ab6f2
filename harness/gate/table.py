"""The gate's printed table: one row per check (value, bound, result), then the reasons.

Why its own module: the same text goes to the terminal, to `chatload run --gate`, and to
CI logs, and must stay readable in an 80-column log viewer.
"""
from __future__ import annotations

from collections.abc import Sequence

from harness.gate.evaluate import CheckResult

HEADERS = ("check", "value", "bound", "result")


def fmt_number(v: float | None) -> str:
    if v is None:
        return "-"
    if float(v).is_integer() and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.4g}" if abs(v) >= 1e4 or abs(v) < 1e-3 else f"{v:.3f}".rstrip("0").rstrip(".")


def bound_text(r: CheckResult) -> str:
    if r.bound is None:
        return f"{r.op} baseline" if r.op else "-"
    return f"{r.op} {fmt_number(r.bound)}"


def result_text(r: CheckResult) -> str:
    if r.skipped:
        return "SKIP"
    if not r.passed:
        return "FAIL"
    return "PASS (within noise)" if r.within_noise else "PASS"


def render(outcomes: Sequence[CheckResult], verbose: bool = False, notes: Sequence[str] = ()) -> str:
    """The table, a one-line verdict, and the detail of every failed, skipped or noisy check
    (of every check with `verbose`)."""
    rows = [(r.name, "missing" if r.value is None and not r.skipped and not r.passed else fmt_number(r.value),
             bound_text(r), result_text(r)) for r in outcomes]
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(HEADERS)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    out = [line(HEADERS), line(tuple("-" * w for w in widths))]
    out += [line(row) for row in rows]
    failed = sum(1 for r in outcomes if not r.passed)
    skipped = sum(1 for r in outcomes if r.skipped)
    passed = len(outcomes) - failed - skipped
    verdict = "GATE PASSED" if failed == 0 else "GATE FAILED"
    out.append("")
    out.append(f"{verdict}: {len(outcomes)} checks, {passed} passed, {failed} failed, {skipped} skipped")
    for r in outcomes:
        if r.detail and (verbose or not r.passed or r.skipped or r.within_noise):
            out.append(f"  {result_text(r).split()[0]} {r.name}: {r.detail}")
    for note in notes:
        out.append(f"  note: {note}")
    return "\n".join(out)
