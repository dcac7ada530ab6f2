"""Hand-made cases: each one a situation docs/fairness.md describes, with its known answer."""
from __future__ import annotations

import math

import numpy as np

from harness.fairness import FairnessParams, TicketTable, analyse
from harness.fairness import reference_impl as ref


def tk(user, join, paired=None, gave=None, peer=None, interests=(), lang="en", **kw):
    return dict(user=user, cls=kw.pop("cls", "talker"), mode="text", lang=lang, interests=list(interests),
                t_join=join, t_paired=paired, t_gave_up=gave, peer=peer, **kw)


def both(records, **params):
    p = FairnessParams(**params)
    t = TicketTable.from_records(records)
    fast, slow = analyse(t, p), ref.analyse(t, p)
    assert fast["fifo_inversions"] == slow["fifo_inversions"]
    assert fast["starved"] == slow["starved"]
    return fast


def test_serving_the_later_of_two_compatible_users_is_an_inversion():
    lifo = [tk("a", 0.0, gave=9.0, interests=["x"]), tk("b", 1.0, paired=2.0, peer="c", interests=["y"]),
            tk("c", 2.0, paired=2.0, peer="b", interests=["x", "y"]), tk("z", 9.5, gave=9.9)]
    assert both(lifo)["fifo_inversions"] == 1
    fifo = [tk("a", 0.0, paired=2.0, peer="c", interests=["x"]), tk("b", 1.0, gave=9.0, interests=["y"]),
            tk("c", 2.0, paired=2.0, peer="a", interests=["x", "y"])]
    assert both(fifo)["fifo_inversions"] == 0


def test_orderings_within_the_tolerance_are_not_blamed():
    close = [tk("a", 1.0, gave=9.0, interests=["x"]), tk("b", 1.03, paired=2.0, peer="c", interests=["y"]),
             tk("c", 2.0, paired=2.0, peer="b", interests=["x", "y"])]
    assert both(close, fifo_tolerance_s=0.05)["fifo_inversions"] == 0
    assert both(close, fifo_tolerance_s=0.0)["fifo_inversions"] == 1


def test_a_later_joiner_still_waiting_is_not_passed_over():
    # s {y,w} is served with o {y} (joined 2); c {w} joined after o and keeps waiting: fair.
    recs = [tk("z", 1.0, gave=1.5, interests=["w"]), tk("o", 2.0, paired=3.0, peer="s", interests=["y"]),
            tk("c", 2.5, interests=["w"]), tk("s", 3.0, paired=3.0, peer="o", interests=["y", "w"])]
    out = both(recs)
    assert out["fifo_inversions"] == 0 and out["still_waiting"] == 1


def test_interest_users_are_not_compatible_with_open_users_before_the_fallback():
    # a (interests) waits; b (none) arrives later and is served with c: fair until a's fallback.
    before = [tk("a", 0.0, gave=20.0, interests=["x"]), tk("b", 1.0, paired=3.0, peer="c"), tk("c", 3.0, paired=3.0, peer="b")]
    assert both(before)["fifo_inversions"] == 0
    after = [tk("a", 0.0, gave=20.0, interests=["x"]), tk("b", 1.0, paired=6.0, peer="c"), tk("c", 6.0, paired=6.0, peer="b")]
    out = both(after)
    assert out["fifo_inversions"] == 1
    assert out["starved_detail"]["gave_up_passed_over"] == 1 and out["starved"] == 1


def test_rematch_block_excuses_skipping_the_previous_partner():
    recs = [
        tk("a", 0.0, paired=0.0, peer="b", t_chat_end=3.0), tk("b", 0.0, paired=0.0, peer="a", t_chat_end=3.0),
        tk("a", 3.0, paired=4.0, peer="c"), tk("b", 3.0, gave=20.0), tk("c", 4.0, paired=4.0, peer="a"),
    ]
    # a and b parted at 3.0 and re-queued together; newcomer c is served with a while b waits:
    # b did not join clearly before a, so no inversion.
    assert both(recs)["fifo_inversions"] == 0
    recs[3] = tk("b", 2.9, gave=20.0)      # b re-queued first: c should have been given b
    assert both(recs)["fifo_inversions"] == 1
    # ...unless c and b had just parted (chat ended at 2.0): blocked until 12.0 by rule 2
    recs.append(tk("c", -5.0, paired=-5.0, peer="b", t_chat_end=2.0))
    recs.append(tk("b", -5.0, paired=-5.0, peer="c", t_chat_end=2.0))
    assert both(recs)["fifo_inversions"] == 0
    assert both(recs, rematch_block_s=0.5)["fifo_inversions"] == 1


def test_waits_percentiles_and_jain():
    recs = [tk(f"u{i}", 0.0, gave=float(i)) for i in range(1, 101)]
    out = both(recs)
    assert out["wait_ms"] == {"count": 100, "p50": 50_000.0, "p90": 90_000.0, "p99": 99_000.0, "max": 100_000.0}
    x = np.arange(1, 101, dtype=float)
    assert math.isclose(out["jain_index"], x.sum() ** 2 / (100 * (x * x).sum()))
    assert out["starved_detail"]["waited_past_threshold"] == 70
    assert analyse([tk("a", 1.0, gave=1.0)])["jain_index"] == 1.0
    assert analyse([])["jain_index"] is None and analyse([])["fifo_inversion_rate"] is None


def test_cohort_ratio_and_rates():
    recs = []
    for i in range(60):
        recs += [tk(f"e{i}", 0.0, paired=0.1, peer=f"f{i}", pair=f"pe{i}", interests=["m"]),
                 tk(f"f{i}", 0.0, paired=0.1, peer=f"e{i}", pair=f"pe{i}", interests=["m"])]
        recs += [tk(f"s{i}", 0.0, paired=2.0, peer=f"t{i}", lang="es", pair=f"ps{i}"),
                 tk(f"t{i}", 0.0, paired=2.0, peer=f"s{i}", lang="es", pair=f"ps{i}")]
    out = both(recs)
    lang = out["worst_to_best_p99_by_dimension"]["lang"]
    assert (lang["worst"], lang["best"], lang["ratio"]) == ("es", "en", 20.0)
    assert out["interest_match_rate"] == 1.0 and out["fallback_rate"] == 0.0
    assert out["repeat_partner_rate"] == 0.0 and out["pairings"] == 120


def test_records_matched_without_pair_ids():
    recs = [tk("a", 0.0, paired=1.0, peer="b"), tk("b", 0.5, paired=1.01, peer="a"),
            tk("a", 20.0, paired=30.0, peer="b"), tk("b", 25.0, paired=30.02, peer="a"),
            tk("c", 0.0, paired=1.0, peer="d")]     # d's ticket is missing
    t = TicketTable.from_records(recs)
    assert t.peer_ticket.tolist() == [1, 0, 3, 2, -1]
    out = analyse(t)
    assert out["pairings"] == 2 and out["unmatched_paired_tickets"] == 1
    assert out["repeat_partner_rate"] == 0.5
