"""Evaluating checks on synthetic results built with real histograms: absolute and
relative checks, missing figures, and the noise awareness of relative percentile checks."""
from __future__ import annotations

import tomllib

import pytest

from harness.gate.evaluate import CheckResult, all_passed, evaluate
from harness.gate.thresholds import parse_thresholds
from tests.gate_synth import synthetic_run


def config(text: str):
    return parse_thresholds(tomllib.loads(text), source="test.toml")


def one(results, text, baseline=None) -> CheckResult:
    (outcome,) = evaluate(results, config(text), baseline)
    return outcome


ABSOLUTE = """
[thresholds]
"correctness.violations_total" = "== 0"
"pair_latency_ms.p99" = "< 1500"
"fairness.jain_index" = ">= 0.9"
"abuse.benign_exposure" = "< 0.05"
"""


def test_absolute_checks_pass_on_a_healthy_run():
    outcomes = evaluate(synthetic_run(1), config(ABSOLUTE))
    assert [o.status for o in outcomes] == ["pass"] * 4
    assert all_passed(outcomes)
    p99 = outcomes[1]
    assert p99.value == synthetic_run(1)["pair_latency_ms"]["p99"] and p99.bound == 1500 and p99.op == "<"


def test_absolute_checks_fail_and_name_the_broken_figure():
    bad = synthetic_run(1, violations=3, jain=0.5, shift_ms=2000)
    outcomes = {o.name: o for o in evaluate(bad, config(ABSOLUTE))}
    assert not outcomes["correctness.violations_total == 0"].passed
    assert outcomes["correctness.violations_total == 0"].detail == "3 is not == 0"
    assert not outcomes["pair_latency_ms.p99 < 1500"].passed
    assert not outcomes["fairness.jain_index >= 0.9"].passed
    assert outcomes["abuse.benign_exposure < 0.05"].passed


def test_a_missing_figure_fails_unless_optional():
    run = synthetic_run(1)
    del run["fairness"]
    failed = one(run, '[thresholds]\n"fairness.jain_index" = ">= 0.9"')
    assert (failed.passed, failed.skipped, failed.value) == (False, False, None)
    assert failed.detail.startswith("missing: no figure at 'fairness.jain_index'")
    skipped = one(run, '[[check]]\nmetric = "fairness.jain_index"\nop = ">="\nvalue = 0.9\noptional = true')
    assert (skipped.passed, skipped.skipped, skipped.status) == (True, True, "skip")
    assert "optional" in skipped.detail


def test_a_non_number_fails():
    run = synthetic_run(1)
    run["fairness"]["jain_index"] = "high"
    out = one(run, '[thresholds]\n"fairness.jain_index" = ">= 0.9"')
    assert not out.passed and "not a number" in out.detail


REL = '[thresholds]\n"pair_latency_ms.p99" = "<= 1.2 * baseline"\n"pair_latency_ms.p50" = "<= 1.2 * baseline"'


def test_relative_checks_are_skipped_without_a_baseline():
    outcomes = evaluate(synthetic_run(1), config(REL))
    assert all(o.skipped and o.passed for o in outcomes)
    assert outcomes[0].detail == "skipped: no baseline given"


def test_same_distribution_passes_and_200ms_worse_fails():
    base = synthetic_run(1)
    same = evaluate(synthetic_run(2), config(REL), base)
    assert all_passed(same), [o.detail for o in same]
    worse = evaluate(synthetic_run(2, shift_ms=200.0), config(REL), base)
    assert [o.passed for o in worse] == [False, False]
    assert "is not <=" in worse[0].detail and "noise-aware limit" in worse[0].detail
    assert worse[0].value > worse[0].bound


def test_noise_awareness_unchanged_runs_pass_where_a_plain_comparison_flakes():
    """Factor 1.0 is the harshest bound: an unchanged run's p99 exceeds the baseline's about
    half of the time. The noise-aware check must (almost) never fail; the nominal
    comparison it reports must fail often, proving the samples really are noisy."""
    text = '[thresholds]\n"pair_latency_ms.p99" = "<= baseline"'
    base = synthetic_run(100, n=1500)
    trials = [one(synthetic_run(seed, n=1500), text, base) for seed in range(101, 161)]
    false_failures = sum(not o.passed for o in trials)
    nominal_failures = sum(o.value > o.bound for o in trials)
    assert false_failures <= 1
    assert nominal_failures >= 15
    assert sum(o.within_noise for o in trials) == nominal_failures - false_failures


def test_noise_awareness_keeps_power_a_clear_regression_fails_every_time():
    text = '[thresholds]\n"pair_latency_ms.p99" = "<= 1.2 * baseline"'
    base = synthetic_run(100, n=1500)
    assert not any(one(synthetic_run(seed, n=1500, shift_ms=200.0), text, base).passed for seed in range(10))
    # A 2x slowdown of the whole distribution fails too (not just an additive shift).
    assert not one(synthetic_run(5, n=1500, median_ms=80.0), text, base).passed


def test_min_delta_adds_absolute_slack():
    base = synthetic_run(1)
    worse = synthetic_run(2, shift_ms=30.0)
    strict = one(worse, '[[check]]\nmetric = "pair_latency_ms.p50"\nop = "<="\nrelative = 1.0', base)
    loose = one(worse, '[[check]]\nmetric = "pair_latency_ms.p50"\nop = "<="\nrelative = 1.0\nmin_delta = 50', base)
    assert not strict.passed and loose.passed and loose.within_noise


def test_noise_false_and_non_percentiles_use_a_point_comparison():
    base = synthetic_run(1)
    cur = synthetic_run(2)
    cur["throughput"]["pairs_per_s"] = 35.0  # baseline 50
    out = evaluate(cur, config(
        '[thresholds]\n"throughput.pairs_per_s" = ">= 0.8 * baseline"\n"pair_latency_ms.max" = "<= 3 * baseline"\n'
        '[[check]]\nmetric = "pair_latency_ms.p99"\nop = "<="\nrelative = 1.2\nnoise = false'), base)
    assert not out[0].passed and out[0].bound == pytest.approx(40.0)
    assert out[0].detail.startswith("point comparison (not a percentile)")
    assert out[1].passed
    assert out[2].detail.startswith("point comparison (noise = false)")


def test_without_raw_histograms_relative_percentiles_fall_back_to_points():
    base = synthetic_run(1)
    cur = synthetic_run(2, shift_ms=200.0)
    del base["histograms"]
    out = one(cur, REL.splitlines()[0] + "\n" + REL.splitlines()[1], base)
    assert not out.passed and "no raw histograms" in out.detail


def test_baseline_missing_the_figure():
    base = synthetic_run(1)
    del base["fairness"]
    out = one(synthetic_run(2), '[thresholds]\n"fairness.jain_index" = ">= 0.9 * baseline"', base)
    assert not out.passed and "in the baseline" in out.detail


def test_repeated_baseline_runs_envelope_and_pooled():
    runs = [synthetic_run(seed, n=1500) for seed in range(10, 15)]
    p99s = [r["pair_latency_ms"]["p99"] for r in runs]
    env = one(synthetic_run(99, n=1500), '[thresholds]\n"pair_latency_ms.p99" = "<= baseline"', runs)
    assert env.bound == max(p99s) and env.passed and "worst of 5 baseline runs" in env.detail
    pooled = one(synthetic_run(99, n=1500),
                 '[gate]\nbaseline_runs = "pooled"\n[thresholds]\n"pair_latency_ms.p99" = "<= baseline"', runs)
    assert min(p99s) <= pooled.bound <= max(p99s) and "pooled 5 baseline runs" in pooled.detail
    # Throughput ">=": the envelope takes the worst (lowest) run.
    for r, v in zip(runs, (50, 45, 55, 60, 52)):
        r["throughput"]["pairs_per_s"] = v
    thr = one(synthetic_run(99), '[thresholds]\n"throughput.pairs_per_s" = ">= baseline"', runs)
    assert thr.bound == 45 and thr.passed
    # A single baseline dict works as well as a list of one.
    assert one(synthetic_run(2), REL.splitlines()[0] + "\n" + REL.splitlines()[1], runs[0]).passed
