"""Mergeable fairness: partial() per table and merge() of the parts equal analyse() of the whole.

The simulator splits a day by pool (mode, lang) over processes; every pool-bound figure
must come out of the merge exactly as from one table (counts and percentiles exactly,
Jain's index and rates up to float summation). Also the exact helpers the speed rests on:
k-th smallest of sorted segments and searches by merging.
"""
from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.fairness_data import synthetic_tickets
from harness.fairness import FairnessParams, TicketTable, analyse, merge, partial
from harness.fairness import search
from harness.fairness.waits import kth_smallest

from .fairness_cases import params_strategy, pooled_ticket_tables, sub_table, ticket_tables

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FLOAT_KEYS = ("jain_index", "fifo_inversion_rate", "interest_match_rate", "fallback_rate", "repeat_partner_rate",
              "worst_to_best_p99_ratio")


def assert_same_section(merged: dict, whole: dict) -> None:
    """Counts, percentiles and names exactly; sums of floats up to rounding."""
    pairs = [(merged.pop(key), whole.pop(key), key) for key in FLOAT_KEYS]
    pairs.append((merged["starved_detail"].pop("rate"), whole["starved_detail"].pop("rate"), "starved rate"))
    for a, b, key in pairs:
        assert (a is None) == (b is None), key
        assert a is None or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15), key
    assert merged == whole


def split_by_pool(t: TicketTable, part_of_pool: dict[tuple[int, int], int], n_parts: int) -> list[TicketTable]:
    where = np.asarray([part_of_pool[(int(m), int(g))] for m, g in zip(t.mode, t.lang)], dtype=np.int64)
    return [sub_table(t, np.flatnonzero(where == k)) for k in range(n_parts)]


@SETTINGS
@given(pooled_ticket_tables(), params_strategy, st.integers(1, 3), st.data())
def test_merge_of_parts_split_by_pool_equals_the_whole(t, p, n_parts, data):
    pools = [(m, g) for m in (0, 1) for g in (0, 1)]
    part_of_pool = {pool: data.draw(st.integers(0, n_parts - 1)) for pool in pools}
    parts = [partial(x, p) for x in split_by_pool(t, part_of_pool, n_parts)]
    assert_same_section(merge(parts, p), analyse(t, p))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ticket_tables(), params_strategy)
def test_analyse_is_the_merge_of_one_part(t, p):
    assert merge([partial(t, p)], p) == analyse(t, p)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pooled_ticket_tables(), params_strategy, st.randoms(use_true_random=False))
def test_ticket_order_does_not_matter(t, p, rnd):
    """Tables not in join order are put in it (stably: a user's tickets at one instant keep
    their index order, as the definitions' history order (t_join, index) wants)."""
    perm = list(range(t.n))
    rnd.shuffle(perm)
    if any(t.t_join[i] == t.t_join[j] and t.user[i] == t.user[j] for i in range(t.n) for j in range(i)):
        perm.sort()          # a user's tickets at one instant: shuffling them changes its history
    assert_same_section(analyse(sub_table(t, np.asarray(perm)), p), analyse(t, p))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pooled_ticket_tables(), params_strategy)
def test_unusual_codes_give_the_same_figures(t, p):
    """Huge user codes, a wide mode x lang code space and negative classes take the general
    (sorting) paths; the figures cannot change. (User codes are never negative: -1 in
    `peer` means no partner.)"""
    odd = TicketTable.from_arrays(
        user=t.user * (1 << 58) + 7, cls=t.cls.astype(np.int64) - 3, mode=t.mode, lang=t.lang * 30000,
        interest_offsets=t.interest_offsets, interest_ids=t.interest_ids, t_join=t.t_join, t_paired=t.t_paired,
        t_gave_up=t.t_gave_up, peer=np.where(t.peer >= 0, t.peer * (1 << 58) + 7, -1), peer_ticket=t.peer_ticket,
        t_chat_end=t.t_chat_end, via_interest=t.via_interest, t_end=t.t_end, mode_names=t.mode_names)
    a, b = analyse(odd, p), analyse(t, p)
    for key in ("pairings", "fifo_inversions", "starved", "repeat_pairings", "unmatched_paired_tickets"):
        assert a[key] == b[key], key
    assert a["wait_ms"] == b["wait_ms"] and a["starved_detail"] == b["starved_detail"]


def test_a_part_pickles_compactly_and_merges_the_same():
    rng = np.random.default_rng(3)
    n = 20_000
    t = TicketTable.from_arrays(user=rng.integers(0, 2000, n), t_join=np.sort(rng.uniform(0, 3600, n)),
                                t_paired=np.full(n, np.nan), t_gave_up=np.full(n, np.nan), peer=np.full(n, -1),
                                cls=rng.integers(0, 3, n), lang=rng.integers(0, 2, n), t_end=4000.0)
    part = partial(t)
    blob = pickle.dumps(part, protocol=5)
    assert len(blob) < 8 * n + 20_000                # the waits, and a few hundred bytes more
    assert merge([pickle.loads(blob)]) == merge([part]) == analyse(t)


def test_merge_refuses_parts_judged_by_other_rules():
    t = TicketTable.from_records([{"user": "a", "t_join": 0.0, "t_gave_up": 1.0}])
    with pytest.raises(ValueError, match="other fairness params"):
        merge([partial(t, FairnessParams()), partial(t, FairnessParams(fifo_tolerance_s=0.2))])
    assert merge([partial(t)], {"fifo_tolerance_s": 0.05})["tickets"] == 1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.sampled_from([0.0, 1.0, 1.5, 2.0, 7.0]) | st.floats(0, 10), max_size=30), min_size=1,
                max_size=6), st.data())
def test_kth_smallest_of_sorted_segments(segs, data):
    arrays = [np.sort(np.asarray(s, dtype=np.float64)) for s in segs]
    flat = np.sort(np.concatenate(arrays))
    if not flat.size:
        return
    k = data.draw(st.integers(0, flat.size - 1))
    assert kth_smallest(arrays, k) == flat[k]


def test_kth_smallest_narrows_large_segments_exactly(monkeypatch):
    from harness.fairness import waits
    monkeypatch.setattr(waits, "_SMALL", 64)        # force the sampling rounds on small data
    monkeypatch.setattr(waits, "_SAMPLE", 32)
    rng = np.random.default_rng(11)
    arrays = [np.sort(rng.exponential(1.0, int(m))) for m in rng.integers(0, 3000, 9)]
    arrays.append(np.full(4000, 0.5))                # a long run of ties
    flat = np.sort(np.concatenate(arrays))
    for k in [0, 1, 17, flat.size // 2, flat.size - 2, flat.size - 1, int(np.searchsorted(flat, 0.5))]:
        assert kth_smallest(arrays, k) == flat[k]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 40), max_size=80), st.lists(st.integers(0, 45), max_size=80),
       st.sampled_from(["left", "right"]), st.booleans(), st.booleans())
def test_merge_search_is_searchsorted(a, keys, side, as_float, sort_keys):
    dtype = np.float64 if as_float else np.int64
    arr = np.sort(np.asarray(a, dtype=dtype) / (4 if as_float else 1))
    k = np.asarray(keys, dtype=dtype) / (4 if as_float else 1)
    if sort_keys:
        k = np.sort(k)
    old_chunk, old_stretch, old_c = search.CHUNK, search.STRETCH, search._c
    search.CHUNK, search.STRETCH = 8, 1          # many chunks, and outliers beyond the stretch
    search._c = None                             # the numpy merge (tests/test_fairness_search_c.py: the C one)
    try:
        got = search.merge_search(arr, k, side=side, assume_sorted=sort_keys)
    finally:
        search.CHUNK, search.STRETCH, search._c = old_chunk, old_stretch, old_c
    assert got.tolist() == np.searchsorted(arr, k, side=side).tolist()


def test_merge_search_falls_back_for_values_without_sortable_bits(monkeypatch):
    monkeypatch.setattr(search, "_c", None)
    arr = np.asarray([-2.0, -0.0, 0.0, 1.0])
    keys = np.asarray([-1.0, 0.0, 3.0])
    assert search.merge_search(arr, keys, "right").tolist() == np.searchsorted(arr, keys, "right").tolist()


def test_partial_reports_progress_from_zero_to_one():
    t = synthetic_tickets(30_000, seed=4)
    seen: list[float] = []
    part = partial(t, FairnessParams(), progress=seen.append)
    assert seen[0] == 0.0 and seen[-1] == 1.0 and len(seen) > 5
    assert all(b >= a for a, b in zip(seen, seen[1:]))
    assert merge([part]) == analyse(t)
