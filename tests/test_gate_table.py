"""The printed gate table: every check with value, bound and result, then the reasons."""
from __future__ import annotations

import tomllib

from harness.gate.evaluate import CheckResult, evaluate
from harness.gate.table import fmt_number, render
from harness.gate.thresholds import parse_thresholds
from tests.gate_synth import synthetic_run


def test_table_rows_and_verdict():
    run = synthetic_run(2, violations=1)
    del run["abuse"]
    cfg = parse_thresholds(tomllib.loads(
        '[thresholds]\n"correctness.violations_total" = "== 0"\n"pair_latency_ms.p99" = ["< 1500", "<= 1.2 * baseline"]\n'
        '[[check]]\nmetric = "abuse.benign_exposure"\nop = "<"\nvalue = 0.05\noptional = true\n'
        '[[check]]\nmetric = "fairness.jain_index"\nop = ">="\nvalue = 0.99'))
    text = render(evaluate(run, cfg), notes=["relative checks skipped"])
    lines = text.splitlines()
    assert lines[0].split() == ["check", "value", "bound", "result"]
    rows = {line.split("  ")[0]: line for line in lines[2:7]}
    assert rows["correctness.violations_total == 0"].split()[-4:] == ["1", "==", "0", "FAIL"]
    assert rows["correctness.violations_total == 0"].rstrip().endswith("FAIL")
    assert rows["pair_latency_ms.p99 < 1500"].rstrip().endswith("PASS")
    assert rows["pair_latency_ms.p99 <= 1.2 * baseline"].rstrip().endswith("SKIP")
    assert rows["abuse.benign_exposure < 0.05"].rstrip().endswith("SKIP")
    assert "GATE FAILED: 5 checks, 1 passed, 2 failed, 2 skipped" in text
    assert "  FAIL fairness.jain_index >= 0.99: 0.97 is not >= 0.99" in text
    assert "  note: relative checks skipped" in text
    # Columns line up: every row is as wide as the header underline allows.
    starts = {line.index("PASS") if "PASS" in line else line.index("FAIL") if "FAIL" in line else line.index("SKIP")
              for line in lines[2:7]}
    assert len(starts) == 1


def test_missing_and_noise_rows():
    missing = CheckResult("x", None, 5.0, False, "missing: no figure", metric="x.y", op="<")
    noisy = CheckResult("y", 10.5, 10.0, True, "current CI ...", metric="y.z", op="<=", within_noise=True)
    text = render([missing, noisy])
    assert "missing" in text.splitlines()[2] and "PASS (within noise)" in text.splitlines()[3]
    assert "GATE FAILED: 2 checks, 1 passed, 1 failed, 0 skipped" in text
    assert "  PASS y: current CI ..." in text


def test_numbers_are_compact():
    assert [fmt_number(v) for v in (0, 1500.0, 0.05, 12.3456, 123456.7, None)] == ["0", "1500", "0.05", "12.346", "1.235e+05", "-"]
