"""Dotted metric paths into a results dict: validation against the known results shape,
and lookup that tells a missing figure apart from a present one.

Why a catalogue: a typo in gates.toml (`pair_latncy_ms.p99`) must be a usage error when
the file is read, not a check that fails "missing" in every run (or, worse, an optional
check that silently never runs). Sections whose keys are open by design (errors by kind,
fairness and abuse figures added by later issues, run metadata) accept any key below them.
"""
from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from typing import Any

#: Leaves of every latency section (`*_ms`, and the contract's `signal_rtt_ms`), besides pNN.
LATENCY_LEAVES = frozenset({"count", "p50", "p90", "p99", "p999", "max", "min", "mean"})

#: Sections with a fixed set of numeric leaves (from the results.json contract).
FIXED_SECTIONS: dict[str, frozenset[str]] = {
    "throughput": frozenset({"pairs_per_s", "messages_per_s"}),
    "users": frozenset({"peak_concurrent", "sessions"}),
    "correctness": frozenset({
        "double_match", "self_match", "asymmetric_pair", "cross_talk", "after_end_delivery",
        "lost_messages", "reordered_messages", "ghost_match", "missing_partner_left",
        "violations_total",
    }),
}

#: Sections whose keys are open (anything below them is accepted).
OPEN_SECTIONS = frozenset({"run", "errors", "fairness", "abuse", "simulate"})

#: Latency sections named by the contract; any other top-level `*_ms` section is one too.
LATENCY_SECTIONS = frozenset({
    "pair_latency_ms", "relay_latency_ms", "partner_left_latency_ms", "signal_rtt_ms",
    "connect_latency_ms",
})

_PERCENTILE = re.compile(r"^p(\d+)$")


class MetricPathError(ValueError):
    """A metric path that cannot name a figure of a results file."""


class Missing:
    """Sentinel for a figure that is absent (or null) in a results dict."""

    _instance: Missing | None = None

    def __new__(cls) -> Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING = Missing()


def percentile_of(leaf: str) -> float | None:
    """The percentile (0..100) a leaf like p50, p99, p999, p9999 names; None if not one.

    Two digits are a whole percentile (p5 is 5, p95 is 95); more digits after a leading
    "99" continue it after the decimal point (p999 is 99.9, p9999 is 99.99).
    """
    m = _PERCENTILE.match(leaf)
    if not m:
        return None
    digits = m.group(1)
    if len(digits) <= 2:
        q = float(digits)
    elif digits.startswith("99"):
        q = float(f"99.{digits[2:]}")
    elif digits == "100":
        q = 100.0
    else:
        return None
    return q if 0.0 <= q <= 100.0 else None


def is_latency_section(section: str) -> bool:
    return section in LATENCY_SECTIONS or section.endswith("_ms")


def _suggest(word: str, choices: set[str] | frozenset[str]) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def known_sections() -> set[str]:
    return set(FIXED_SECTIONS) | set(OPEN_SECTIONS) | set(LATENCY_SECTIONS)


def validate_path(path: str) -> None:
    """Raise MetricPathError unless `path` names a figure the results contract can hold."""
    if not isinstance(path, str) or not path.strip():
        raise MetricPathError(f"metric path must be a non-empty string, got {path!r}")
    parts = path.split(".")
    if any(not p for p in parts):
        raise MetricPathError(f"metric path {path!r} has an empty component")
    section = parts[0]
    if section == "histograms":
        raise MetricPathError(
            f"metric path {path!r}: gate on the summary (e.g. 'pair_latency_ms.p99'); raw"
            " histograms are used automatically for percentiles"
        )
    if section in OPEN_SECTIONS:
        if len(parts) < 2:
            raise MetricPathError(f"metric path {path!r} names a whole section, not a figure")
        return
    if is_latency_section(section):
        if section not in LATENCY_SECTIONS:
            # A new `*_ms` section is accepted, unless it looks like a typo of a known one.
            close = difflib.get_close_matches(section, sorted(LATENCY_SECTIONS), n=1, cutoff=0.85)
            if close:
                raise MetricPathError(
                    f"unknown metric path {path!r}: no results section {section!r}; did you mean"
                    f" {close[0]!r}? (set strict = false on the check to allow it)"
                )
        if len(parts) != 2:
            raise MetricPathError(
                f"metric path {path!r}: a latency section has one level of figures,"
                f" e.g. '{section}.p99'"
            )
        leaf = parts[1]
        if leaf not in LATENCY_LEAVES and percentile_of(leaf) is None:
            raise MetricPathError(
                f"unknown metric path {path!r}: {section!r} has"
                f" {', '.join(sorted(LATENCY_LEAVES))} or pNN{_suggest(leaf, LATENCY_LEAVES)}"
            )
        return
    if section in FIXED_SECTIONS:
        leaves = FIXED_SECTIONS[section]
        if len(parts) != 2 or parts[1] not in leaves:
            leaf = parts[1] if len(parts) > 1 else ""
            raise MetricPathError(
                f"unknown metric path {path!r}: {section!r} has"
                f" {', '.join(sorted(leaves))}{_suggest(leaf, leaves)}"
            )
        return
    raise MetricPathError(
        f"unknown metric path {path!r}: no results section {section!r}"
        f"{_suggest(section, known_sections())} (set strict = false on the check to allow it)"
    )


def lookup(results: Mapping[str, Any], path: str) -> Any:
    """The figure at a dotted path, or MISSING when any step is absent or the value is null.

    A latency percentile that the summary lacks (say p95) is computed from the raw
    histogram in results["histograms"] when one is there.
    """
    node: Any = results
    for part in path.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        else:
            node = MISSING
            break
    if node is None:
        node = MISSING
    if node is MISSING:
        return _from_histogram(results, path)
    return node


def histogram_for(results: Mapping[str, Any], section: str) -> Mapping[str, Any] | None:
    """The raw histogram dict behind a latency section (`pair_latency_ms` -> "pair")."""
    hists = results.get("histograms")
    if not isinstance(hists, Mapping):
        return None
    # results.json names them after the kind ("pair", "relay", "signal_rtt"); accept the
    # section's own name and the name without the unit too.
    for name in (section, section.removesuffix("_ms"), section.removesuffix("_ms").removesuffix("_latency")):
        h = hists.get(name)
        if isinstance(h, Mapping):
            return h
    return None


def _from_histogram(results: Mapping[str, Any], path: str) -> Any:
    parts = path.split(".")
    if len(parts) != 2 or not is_latency_section(parts[0]):
        return MISSING
    q = percentile_of(parts[1])
    if q is None:
        return MISSING
    raw = histogram_for(results, parts[0])
    if raw is None:
        return MISSING
    from harness.histogram import LogHistogram  # local: paths stay importable without numpy

    value = LogHistogram.from_dict(raw).percentile(q)
    return MISSING if value is None else round(value, 3)


def as_number(value: Any) -> float | None:
    """A figure as a float, or None if it is not a finite number (bools are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    f = float(value)
    return f if math.isfinite(f) else None
