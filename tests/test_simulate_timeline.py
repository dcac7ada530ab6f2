"""The report's view of a simulation: timeline rows and the ticket sample (timeline.py)."""
from __future__ import annotations

import numpy as np

from harness.fairness.tickets import TicketTable
from harness.simulate import timeline as tl

NAN = float("nan")


def table(t_join, t_paired, t_gave_up, t_chat_end) -> TicketTable:
    n = len(t_join)
    return TicketTable.from_arrays(user=np.arange(n), t_join=np.asarray(t_join, float),
                                   t_paired=np.asarray(t_paired, float), t_gave_up=np.asarray(t_gave_up, float),
                                   peer=np.full(n, -1), t_chat_end=np.asarray(t_chat_end, float), t_end=10.0)


def test_counts_per_row_by_hand():
    # rows of 1 s over 10 s: a pair of tickets paired at 2.5 (chat to 6.0), one paired at 2.5 whose
    # chat never ends, one that gave up at 4.0, one still waiting at the end
    t = table(t_join=[1.0, 2.0, 2.0, 3.0, 5.0], t_paired=[2.5, 2.5, NAN, NAN, NAN],
              t_gave_up=[NAN, NAN, 4.0, NAN, NAN], t_chat_end=[6.0, NAN, NAN, NAN, NAN])
    part = tl.shard_timeline(t, 10.0)
    assert part.paired_tickets.tolist() == [0, 0, 2, 0, 0, 0, 0, 0, 0, 0]
    #            edges:   0  1  2  3  4  5  6  7  8  9
    assert part.waiting.tolist() == [0, 1, 3, 2, 1, 2, 2, 2, 2, 2]
    assert part.in_chat.tolist() == [0, 0, 0, 2, 2, 2, 1, 1, 1, 1]
    rows, sample = tl.merge([part], np.array([0.5, 1.5]), np.array([3.0, np.inf]), 10.0)
    assert [r["t"] for r in rows] == [float(i) for i in range(10)]
    assert rows[2]["pairs"] == 1.0                     # one pairing (two tickets) in a 1 s row
    assert [r["online"] for r in rows] == [0, 1, 2, 1, 1, 1, 1, 1, 1, 1]
    assert [s["t_join"] for s in sample] == [1.0, 2.0, 2.0, 3.0, 5.0]
    assert sample[2]["t_gave_up"] == 4.0 and sample[0]["t_paired"] == 2.5 and sample[4]["t_paired"] is None


def test_rows_stay_few_and_shards_add_up():
    assert tl.step_for(86_400.0) == 144.0 and tl.edges_for(86_400.0, 144.0).size == tl.POINTS
    assert tl.step_for(30.0) == 1.0
    rng = np.random.default_rng(2)
    n = 5000
    join = np.sort(rng.uniform(0, 3000, n))
    paired = np.where(rng.random(n) < 0.8, join + rng.exponential(3.0, n), NAN)
    gave = np.where(np.isnan(paired) & (rng.random(n) < 0.5), join + 20.0, NAN)
    end = paired + rng.exponential(60.0, n)
    whole = tl.shard_timeline(table(join, paired, gave, end), 3600.0)
    halves = [tl.shard_timeline(table(join[s], paired[s], gave[s], end[s]), 3600.0, share=0.5)
              for s in (slice(0, n, 2), slice(1, n, 2))]
    for name in ("paired_tickets", "waiting", "in_chat"):
        assert np.array_equal(getattr(whole, name), sum(getattr(h, name) for h in halves)), name
    assert len(whole.sample) == tl.SAMPLE and sum(len(h.sample) for h in halves) == tl.SAMPLE
