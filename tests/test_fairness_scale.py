"""benchmarks/fairness_scale.py runs end to end in its CI mode and prints every figure.

Speed itself is measured, not asserted (docs/fairness.md quotes the figures); this only
checks that the benchmark still works: partial() in a child process, the parts' merge,
the live path from ledger-shaped records.
"""
from __future__ import annotations

import subprocess
import sys

from tests.support import ROOT

EXPECTED = {"analyse_smoke_seconds", "analyse_smoke_cold_seconds", "partial_smoke_seconds",
            "partial_smoke_peak_rss_mb", "partial_smoke_table_mb", "merge_2xsmoke_seconds",
            "live_smoke_convert_seconds", "live_smoke_seconds", "live_smoke_warm_seconds"}


def test_fairness_scale_smoke_prints_every_figure() -> None:
    run = subprocess.run([sys.executable, "benchmarks/fairness_scale.py", "--smoke"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    figures = dict(line.split("=", 1) for line in run.stdout.splitlines() if "=" in line)
    assert set(figures) == EXPECTED
    assert all(float(v) > 0 for v in figures.values())


def test_ledger_records_look_like_the_harness_records() -> None:
    sys.path.insert(0, str(ROOT))
    from benchmarks.fairness_scale import ledger_records
    from harness.fairness import analyse
    from harness.fairness.live import live_tickets
    from harness.ledger import ChatRecord

    records, waits, opens, t_end = ledger_records(2_000, seed=3)
    blank = ChatRecord("u", 0, 0, 0, None, True, "text", "en", [], "talker").to_dict()
    assert all(set(r) == set(blank) for r in records)
    assert all(r["peer"][0] != r["u"] for r in records)
    section = analyse(list(live_tickets(records, waits, opens)), t_end=t_end)
    assert section["tickets"] == len(records) + len(waits) + len(opens)
    assert section["unmatched_paired_tickets"] == 0 and section["pairings"] == len(records) // 2
