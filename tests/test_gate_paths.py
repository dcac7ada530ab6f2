"""Dotted metric paths: validation, lookup, missing values, percentiles from raw histograms."""
from __future__ import annotations

import numpy as np
import pytest

from harness.gate.paths import MISSING, MetricPathError, as_number, lookup, percentile_of, validate_path
from harness.histogram import LogHistogram


@pytest.mark.parametrize("leaf, q", [("p50", 50.0), ("p5", 5.0), ("p95", 95.0), ("p99", 99.0),
                                     ("p999", 99.9), ("p9999", 99.99), ("p100", 100.0)])
def test_percentile_leaves(leaf, q):
    assert percentile_of(leaf) == q


@pytest.mark.parametrize("leaf", ["max", "p", "p123", "pp99", "p99x"])
def test_not_percentile_leaves(leaf):
    assert percentile_of(leaf) is None


def test_lookup_present_missing_and_null():
    results = {"correctness": {"violations_total": 0, "examples": {}}, "fairness": {"jain_index": None}}
    assert lookup(results, "correctness.violations_total") == 0
    assert lookup(results, "correctness.lost_messages") is MISSING
    assert lookup(results, "fairness.jain_index") is MISSING  # null counts as missing
    assert lookup(results, "abuse.benign_exposure") is MISSING
    assert lookup({"run": {"workers": 3}}, "run.workers.deeper") is MISSING
    assert not MISSING


def test_missing_percentile_is_computed_from_the_raw_histogram():
    h = LogHistogram()
    h.record_many(np.arange(1, 1001, dtype=float))
    results = {"pair_latency_ms": h.summary(), "histograms": {"pair_latency_ms": h.to_dict()}}
    assert "p95" not in results["pair_latency_ms"]
    assert lookup(results, "pair_latency_ms.p95") == pytest.approx(950.0, rel=0.01)
    # Also found when the histogram is stored without the unit suffix.
    results2 = {"histograms": {"relay_latency": h.to_dict()}}
    assert lookup(results2, "relay_latency_ms.p50") == pytest.approx(500.0, rel=0.01)
    assert lookup(results2, "relay_latency_ms.max") is MISSING  # only percentiles come from histograms
    empty = {"histograms": {"pair_latency_ms": LogHistogram().to_dict()}}
    assert lookup(empty, "pair_latency_ms.p99") is MISSING


def test_validate_path():
    validate_path("pair_latency_ms.p99")
    validate_path("errors.by_kind.timeout")
    with pytest.raises(MetricPathError, match="empty component"):
        validate_path("pair_latency_ms..p99")
    with pytest.raises(MetricPathError, match="non-empty string"):
        validate_path("")


@pytest.mark.parametrize("value, expected", [(3, 3.0), (2.5, 2.5), (True, None), ("3", None),
                                             (float("nan"), None), (float("inf"), None), ([1], None)])
def test_as_number(value, expected):
    assert as_number(value) == expected


def test_histograms_named_after_the_kind_are_found():
    h = LogHistogram()
    h.record_many(np.arange(1, 101, dtype=float))
    results = {"histograms": {"pair": h.to_dict(), "signal_rtt": h.to_dict()}}
    assert lookup(results, "pair_latency_ms.p95") == pytest.approx(95.0, rel=0.01)
    assert lookup(results, "signal_rtt_ms.p50") == pytest.approx(50.0, rel=0.02)
