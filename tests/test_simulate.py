"""The simulator's tickets are a faithful record of what the matcher did to the plan."""
from __future__ import annotations

import numpy as np
import pytest

from harness.simulate import make_matcher, simulate
from harness.simulate.matcher import load_matcher_class

from .sim_population import small_model


@pytest.fixture(scope="module")
def sim():
    model = small_model()
    plan = model.build(seed=5, hours=0.15)
    return plan, simulate(plan, make_matcher(), model.chat_length_s, seed=2, class_names=model.CLASSES)


def test_pairings_are_consistent(sim):
    plan, res = sim
    t = res.tickets
    a, b = t.pairs
    assert a.size == res.pairings > 500
    assert np.array_equal(t.t_paired[a], t.t_paired[b])
    assert np.array_equal(t.peer[a], t.user[b]) and np.array_equal(t.peer[b], t.user[a])
    assert not np.any(t.user[a] == t.user[b])
    assert np.all(t.mode[a] == t.mode[b]) and np.all(t.lang[a] == t.lang[b])
    assert int(t.paired.sum()) == 2 * a.size      # every paired ticket has its partner's ticket
    assert np.all(t.t_paired[t.paired] >= t.t_join[t.paired])


def test_visits_follow_the_plan(sim):
    plan, res = sim
    t = res.tickets
    per_user_pairs = np.bincount(t.user[t.paired], minlength=plan.n)
    assert np.all(per_user_pairs <= plan.chats)   # nobody chats more than its visit's chats
    # a give-up happens exactly after the visitor's patience
    g = t.gave_up
    assert g.sum() > 0
    assert np.allclose(t.t_gave_up[g] - t.t_join[g], plan.patience_s[t.user[g]].astype(np.float64))
    # a user's tickets do not overlap: each starts when the previous one's chat ended
    order = t.user_order
    same = t.user[order[1:]] == t.user[order[:-1]]
    prev, nxt = order[:-1][same], order[1:][same]
    assert np.all(t.paired[prev])
    assert np.all(t.t_chat_end[prev] <= t.t_join[nxt])
    # arrivals: each visit's first ticket starts at its arrival time
    first = np.ones(t.n, dtype=bool)
    first[nxt] = False
    assert np.array_equal(np.sort(t.t_join[first]), plan.arrival_s[: res.visits])


def test_interest_fallback_timer_is_run(sim):
    plan, res = sim
    t = res.tickets
    fb = t.has_interests & t.paired & ~t.via_interest
    waits = t.t_paired[fb] - t.t_join[fb]
    assert np.isclose(waits, 5.0).sum() > 10      # paired by tick() exactly at the fallback
    assert waits.min() >= 5.0 - 1e-9              # never before it (rule 5)


def test_same_seed_same_tickets():
    model = small_model()
    plan = model.build(seed=9, hours=0.05)
    r1 = simulate(plan, make_matcher(), model.chat_length_s, seed=4)
    r2 = simulate(plan, make_matcher(), model.chat_length_s, seed=4)
    for col in ("user", "t_join", "t_paired", "t_gave_up", "peer_ticket"):
        assert np.array_equal(getattr(r1.tickets, col), getattr(r2.tickets, col), equal_nan=True)


def test_matcher_loading():
    m = make_matcher("tests.unfair_matchers:LifoMatcher", interest_fallback=7.0, rematch_block=3.0)
    assert (m.fb, m.block) == (7.0, 3.0)
    assert load_matcher_class("reference_server.core.PairingCore").__name__ == "PairingCore"
    with pytest.raises(TypeError):
        load_matcher_class("harness.simulate.matcher:make_matcher")
    with pytest.raises(ValueError):
        load_matcher_class("nocolon")
