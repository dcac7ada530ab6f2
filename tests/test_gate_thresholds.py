"""gates.toml parsing: both shapes, defaults, and a clear error for every kind of mistake."""
from __future__ import annotations

import tomllib

import pytest

from harness.gate.thresholds import Check, ThresholdsError, load_thresholds, parse_expression, parse_thresholds
from tests.support import ROOT


def parse(text: str):
    return parse_thresholds(tomllib.loads(text), source="gates.toml")


def test_compact_and_table_shapes_give_the_same_checks():
    config = parse(
        """
        [gate]
        confidence = 0.95
        baseline_runs = "pooled"
        [thresholds]
        "correctness.violations_total" = "== 0"
        "pair_latency_ms.p99" = ["< 1500", "<= 1.2 * baseline"]
        "throughput.pairs_per_s" = ">= baseline * 0.8"
        [[check]]
        name = "exposure"
        metric = "abuse.benign_exposure"
        op = "<"
        value = 0.05
        optional = true
        [[check]]
        metric = "relay_latency_ms.p50"
        op = "<="
        relative = 1.5
        min_delta = 2
        noise = false
        confidence = 0.999
        """
    )
    assert config.confidence == 0.95 and config.baseline_runs == "pooled" and config.has_relative
    by_name = {c.name: c for c in config.checks}
    assert list(by_name) == [
        "correctness.violations_total == 0",
        "pair_latency_ms.p99 < 1500",
        "pair_latency_ms.p99 <= 1.2 * baseline",
        "throughput.pairs_per_s >= 0.8 * baseline",
        "exposure",
        "relay_latency_ms.p50 <= 1.5 * baseline",
    ]
    assert by_name["pair_latency_ms.p99 < 1500"] == Check(
        name="pair_latency_ms.p99 < 1500", metric="pair_latency_ms.p99", op="<", value=1500.0, confidence=0.95
    )
    rel = by_name["pair_latency_ms.p99 <= 1.2 * baseline"]
    assert rel.is_relative and rel.relative == 1.2 and rel.value is None
    assert by_name["throughput.pairs_per_s >= 0.8 * baseline"].relative == 0.8
    assert by_name["exposure"].optional is True
    last = by_name["relay_latency_ms.p50 <= 1.5 * baseline"]
    assert (last.min_delta, last.noise, last.confidence) == (2.0, False, 0.999)


@pytest.mark.parametrize(
    "expr, expected",
    [
        ("< 1500", ("<", 1500.0, None)),
        ("<=1e3", ("<=", 1000.0, None)),
        ("== 0", ("==", 0.0, None)),
        (">= -0.5", (">=", -0.5, None)),
        ("<= baseline", ("<=", None, 1.0)),
        ("<= 1.2 * baseline", ("<=", None, 1.2)),
        (">= baseline * .8", (">=", None, 0.8)),
    ],
)
def test_expressions(expr, expected):
    assert parse_expression(expr, "x") == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ('[thresholds]\n"pair_latncy_ms.p99" = "< 5"', "did you mean 'pair_latency_ms'"),
        ('[thresholds]\n"pair_latency_ms.p98x" = "< 5"', "unknown metric path 'pair_latency_ms.p98x'"),
        ('[thresholds]\n"correctness.cross_talks" = "== 0"', "did you mean 'cross_talk'"),
        ('[thresholds]\n"pair_latency_ms" = "< 5"', "one level of figures"),
        ('[thresholds]\n"fairness" = "< 5"', "whole section"),
        ('[thresholds]\n"histograms.pair_latency_ms" = "< 5"', "raw histograms are used automatically"),
        ('[thresholds]\n"pair_latency_ms.p99" = "=< 5"', "does not start with an operator"),
        ('[thresholds]\n"pair_latency_ms.p99" = "< fast"', "cannot read bound 'fast'"),
        ('[thresholds]\n"pair_latency_ms.p99" = 5', "expected a string"),
        ('[thresholds]\n"correctness.violations_total" = "== baseline"', "relative check needs one of"),
        ('[thresholds]\n"pair_latency_ms.p99" = "<= -1 * baseline"', "positive number"),
        ('[[check]]\nmetric = "pair_latency_ms.p99"\nop = "=>"\nvalue = 1', "bad operator '=>'"),
        ('[[check]]\nmetric = "pair_latency_ms.p99"\nop = "<"', "exactly one of 'value'"),
        ('[[check]]\nmetric = "pair_latency_ms.p99"\nop = "<"\nvalue = 1\nrelative = 2', "exactly one of 'value'"),
        ('[[check]]\nmetric = "pair_latency_ms.p99"\nop = "<"\nvalue = "1"', "'value' must be a number"),
        ('[[check]]\nmetric = "pair_latency_ms.p99"\nop = "<"\nvalue = 1\noptinal = true', "unknown key(s) optinal"),
        ('[[check]]\nmetric = "pair_latency_ms.p99"\nop = "<"\nvalue = 1\noptional = "yes"', "'optional' must be true or false"),
        ('[[check]]\nmetric = "pair_latency_ms.p99"\nop = "<"\nvalue = 1\nmin_delta = 3', "relative checks only"),
        ('[[check]]\nop = "<"\nvalue = 1', "missing 'metric'"),
        ('[gate]\nconfidence = 1.5\n[thresholds]\n"pair_latency_ms.p99" = "< 5"', "confidence must be"),
        ('[gate]\nbaseline_runs = "mean"\n[thresholds]\n"pair_latency_ms.p99" = "< 5"', "baseline_runs must be"),
        ('[gate]\nconfidense = 0.9\n[thresholds]\n"pair_latency_ms.p99" = "< 5"', "[gate] has unknown key(s) confidense"),
        ('[threshold]\n"pair_latency_ms.p99" = "< 5"', "unknown top-level key(s) threshold"),
        ('[gate]\nconfidence = 0.9', "no checks"),
        ('[thresholds]\n"pair_latency_ms.p99" = ["< 5", "< 5"]', "two checks are named"),
    ],
)
def test_mistakes_are_clear_errors(text, message):
    with pytest.raises(ThresholdsError) as exc:
        parse(text)
    assert message in str(exc.value)
    assert str(exc.value).startswith("gates.toml")


def test_strict_false_allows_a_path_outside_the_catalogue():
    config = parse('[[check]]\nmetric = "team.custom_figure"\nop = "<"\nvalue = 3\nstrict = false')
    assert config.checks[0].metric == "team.custom_figure"
    with pytest.raises(ThresholdsError, match="no results section 'team'"):
        parse('[[check]]\nmetric = "team.custom_figure"\nop = "<"\nvalue = 3')


def test_open_sections_and_new_latency_sections_are_accepted():
    config = parse(
        '[thresholds]\n"errors.timeout" = "== 0"\n"fairness.wait_ratio_p90" = "< 3"\n'
        '"video_setup_ms.p95" = "< 800"\n"signal_rtt_ms.p9999" = "< 900"'
    )
    assert len(config.checks) == 4


def test_bad_files(tmp_path):
    with pytest.raises(ThresholdsError, match="cannot read thresholds file"):
        load_thresholds(tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text('[thresholds\n"x" = 1\n')
    with pytest.raises(ThresholdsError, match="bad.toml: not valid TOML"):
        load_thresholds(bad)
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ThresholdsError, match="not valid TOML"):
        load_thresholds(binary)


def test_the_repository_example_parses():
    config = load_thresholds(ROOT / "gates.toml")
    metrics = {c.metric for c in config.checks}
    assert {"pair_latency_ms.p99", "correctness.violations_total", "fairness.jain_index",
            "abuse.benign_exposure"} <= metrics
    assert any(c.is_relative for c in config.checks)
