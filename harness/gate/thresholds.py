"""Parse gates.toml into checks.

Two shapes, one result (a tuple of `Check`):

    [gate]                       # optional defaults
    confidence = 0.99            # confidence of the noise intervals (relative checks)
    baseline_runs = "envelope"   # several baseline runs: "envelope" or "pooled"

    [thresholds]                 # compact: metric = "OP NUMBER" | "OP [FACTOR *] baseline"
    "correctness.violations_total" = "== 0"
    "pair_latency_ms.p99" = ["< 1500", "<= 1.2 * baseline"]

    [[check]]                    # full: every option
    name = "pair p99 vs baseline"      # default: "<metric> <op> <bound>"
    metric = "pair_latency_ms.p99"
    op = "<="
    relative = 1.2                     # or: value = 1500 (absolute)
    min_delta = 5.0                    # relative only: extra absolute slack, same unit
    noise = true                       # relative only: use confidence intervals
    optional = false                   # a missing figure skips instead of failing
    strict = true                      # false: allow a metric path outside the catalogue
    confidence = 0.99                  # override [gate] for this check

Every mistake (unknown key, operator, metric path, duplicate name) is a ThresholdsError
naming the file and the check, so `chatload gate` exits 2 with a message, not a traceback.
"""
from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.gate.paths import MetricPathError, validate_path

OPS = ("<", "<=", ">", ">=", "==", "!=")
RELATIVE_OPS = ("<", "<=", ">", ">=")
BASELINE_MODES = ("envelope", "pooled")

_CHECK_KEYS = {
    "name", "metric", "op", "value", "relative", "optional", "noise", "min_delta", "strict",
    "confidence",
}
_GATE_KEYS = {"confidence", "baseline_runs"}
_TOP_KEYS = {"gate", "thresholds", "check"}
_EXPR = re.compile(r"^\s*(<=|>=|==|!=|<|>)\s*(.+?)\s*$")
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_REL_LEFT = re.compile(rf"^({_NUM})\s*\*\s*baseline$")
_REL_RIGHT = re.compile(rf"^baseline\s*\*\s*({_NUM})$")
_ABS = re.compile(rf"^{_NUM}$")


class ThresholdsError(ValueError):
    """A gates.toml that cannot be used; the message says where and why."""


@dataclass(frozen=True)
class Check:
    """One gate check: an absolute bound (`value`) or a factor of the baseline (`relative`)."""

    name: str
    metric: str
    op: str
    value: float | None = None
    relative: float | None = None
    optional: bool = False
    noise: bool = True
    min_delta: float = 0.0
    confidence: float = 0.99

    @property
    def is_relative(self) -> bool:
        return self.relative is not None

    def describe_bound(self) -> str:
        if self.relative is not None:
            factor = "" if self.relative == 1 else f"{_num(self.relative)} * "
            return f"{self.op} {factor}baseline"
        return f"{self.op} {_num(self.value)}"


@dataclass(frozen=True)
class GateConfig:
    checks: tuple[Check, ...]
    confidence: float = 0.99
    baseline_runs: str = "envelope"

    @property
    def has_relative(self) -> bool:
        return any(c.is_relative for c in self.checks)


def _num(v: float | None) -> str:
    if v is None:
        return "?"
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _confidence(value: Any, where: str) -> float:
    if not _is_number(value) or not 0.5 <= float(value) < 1.0:
        raise ThresholdsError(f"{where}: confidence must be a number in [0.5, 1), got {value!r}")
    return float(value)


def parse_expression(expr: Any, where: str) -> tuple[str, float | None, float | None]:
    """'< 1500' -> ('<', 1500.0, None); '<= 1.2 * baseline' -> ('<=', None, 1.2)."""
    if not isinstance(expr, str):
        raise ThresholdsError(f"{where}: expected a string like '< 1500' or '<= 1.2 * baseline', got {expr!r}")
    m = _EXPR.match(expr)
    if not m:
        raise ThresholdsError(
            f"{where}: {expr!r} does not start with an operator ({', '.join(OPS)})"
        )
    op, rest = m.group(1), m.group(2)
    if _ABS.match(rest):
        return op, float(rest), None
    if rest == "baseline":
        factor = 1.0
    else:
        rm = _REL_LEFT.match(rest) or _REL_RIGHT.match(rest)
        if not rm:
            raise ThresholdsError(
                f"{where}: cannot read bound {rest!r}; use a number, 'baseline' or 'FACTOR * baseline'"
            )
        factor = float(rm.group(1))
    return op, None, factor


def _make_check(
    *, name: str | None, metric: Any, op: Any, value: Any, relative: Any, where: str,
    optional: Any = False, noise: Any = True, min_delta: Any = 0.0, strict: Any = True,
    confidence: float,
) -> Check:
    if not isinstance(metric, str):
        raise ThresholdsError(f"{where}: 'metric' must be a string like 'pair_latency_ms.p99'")
    for key, flag in (("optional", optional), ("noise", noise), ("strict", strict)):
        if not isinstance(flag, bool):
            raise ThresholdsError(f"{where}: {key!r} must be true or false, got {flag!r}")
    if strict:
        try:
            validate_path(metric)
        except MetricPathError as exc:
            raise ThresholdsError(f"{where}: {exc}") from None
    if op not in OPS:
        raise ThresholdsError(f"{where}: bad operator {op!r}; use one of {', '.join(OPS)}")
    if (value is None) == (relative is None):
        raise ThresholdsError(f"{where}: give exactly one of 'value' (absolute) or 'relative' (factor of baseline)")
    if value is not None and not _is_number(value):
        raise ThresholdsError(f"{where}: 'value' must be a number, got {value!r}")
    if relative is not None:
        if not _is_number(relative) or relative <= 0:
            raise ThresholdsError(f"{where}: 'relative' must be a positive number, got {relative!r}")
        if op not in RELATIVE_OPS:
            raise ThresholdsError(f"{where}: a relative check needs one of {', '.join(RELATIVE_OPS)}, not {op!r}")
    if not _is_number(min_delta) or min_delta < 0:
        raise ThresholdsError(f"{where}: 'min_delta' must be a number >= 0, got {min_delta!r}")
    if min_delta and relative is None:
        raise ThresholdsError(f"{where}: 'min_delta' applies to relative checks only")
    check = Check(
        name="",
        metric=metric,
        op=op,
        value=None if value is None else float(value),
        relative=None if relative is None else float(relative),
        optional=optional,
        noise=noise,
        min_delta=float(min_delta),
        confidence=confidence,
    )
    if name is None:
        name = f"{metric} {check.describe_bound()}"
    elif not isinstance(name, str) or not name.strip():
        raise ThresholdsError(f"{where}: 'name' must be a non-empty string")
    return replace(check, name=name)


def parse_thresholds(data: Mapping[str, Any], source: str = "gates.toml") -> GateConfig:
    """Build the gate configuration from an already-parsed TOML document."""
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ThresholdsError(
            f"{source}: unknown top-level key(s) {', '.join(sorted(unknown))}; expected [gate], [thresholds], [[check]]"
        )
    gate = data.get("gate", {})
    if not isinstance(gate, Mapping):
        raise ThresholdsError(f"{source}: [gate] must be a table")
    bad = set(gate) - _GATE_KEYS
    if bad:
        raise ThresholdsError(f"{source}: [gate] has unknown key(s) {', '.join(sorted(bad))}")
    confidence = _confidence(gate.get("confidence", 0.99), f"{source} [gate]")
    mode = gate.get("baseline_runs", "envelope")
    if mode not in BASELINE_MODES:
        raise ThresholdsError(f"{source} [gate]: baseline_runs must be one of {', '.join(BASELINE_MODES)}, got {mode!r}")

    checks: list[Check] = []
    compact = data.get("thresholds", {})
    if not isinstance(compact, Mapping):
        raise ThresholdsError(f"{source}: [thresholds] must be a table of metric = \"OP BOUND\"")
    for metric, exprs in compact.items():
        for expr in exprs if isinstance(exprs, list) else [exprs]:
            where = f"{source} [thresholds] {metric!r}"
            op, value, relative = parse_expression(expr, where)
            checks.append(_make_check(
                name=None, metric=metric, op=op, value=value, relative=relative, where=where,
                confidence=confidence,
            ))

    tables = data.get("check", [])
    if not isinstance(tables, list):
        raise ThresholdsError(f"{source}: 'check' must be an array of tables ([[check]])")
    for i, table in enumerate(tables, 1):
        where = f"{source} [[check]] #{i}"
        if not isinstance(table, Mapping):
            raise ThresholdsError(f"{where}: must be a table")
        if isinstance(table.get("name"), str):
            where += f" ({table['name']})"
        bad = set(table) - _CHECK_KEYS
        if bad:
            raise ThresholdsError(f"{where}: unknown key(s) {', '.join(sorted(bad))}; allowed: {', '.join(sorted(_CHECK_KEYS))}")
        for key in ("metric", "op"):
            if key not in table:
                raise ThresholdsError(f"{where}: missing {key!r}")
        conf = _confidence(table["confidence"], where) if "confidence" in table else confidence
        checks.append(_make_check(
            name=table.get("name"), metric=table["metric"], op=table["op"],
            value=table.get("value"), relative=table.get("relative"), where=where,
            optional=table.get("optional", False), noise=table.get("noise", True),
            min_delta=table.get("min_delta", 0.0), strict=table.get("strict", True),
            confidence=conf,
        ))

    if not checks:
        raise ThresholdsError(f"{source}: no checks; add [thresholds] entries or [[check]] tables")
    seen: set[str] = set()
    for c in checks:
        if c.name in seen:
            raise ThresholdsError(f"{source}: two checks are named {c.name!r}; give one a distinct 'name'")
        seen.add(c.name)
    return GateConfig(checks=tuple(checks), confidence=confidence, baseline_runs=mode)


def load_thresholds(path: str | Path) -> GateConfig:
    """Read and parse a gates.toml file."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ThresholdsError(f"cannot read thresholds file {str(p)!r}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ThresholdsError(f"{p.name}: not valid TOML: {exc}") from None
    return parse_thresholds(data, source=p.name)
