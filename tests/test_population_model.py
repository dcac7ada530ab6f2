"""The Plan as a whole: columns, mixes, abuse, determinism."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from harness.population import ABUSE_KINDS, CLASSES, PopulationModel
from harness.population.classes import ABUSER, class_probabilities


@pytest.fixture(scope="module")
def plan():
    return PopulationModel(dau=1_000_000, abuse_share=0.2).build(seed=5, start_hour=0.0, hours=4.0)


def test_contract_columns_and_types(plan):
    n = plan.n
    assert n > 100_000
    expected = {"arrival_s": np.float64, "user_class": np.int8, "mode": np.int8, "lang": np.int16,
                "patience_s": np.float32, "chats": np.int16, "abuse_kind": np.int8, "reconnects": np.int16}
    for name, dtype in expected.items():
        col = getattr(plan, name)
        assert col.dtype == dtype and col.shape == (n,), name
    assert plan.interest_offsets.shape == (n + 1,) and plan.interest_ids.dtype == np.int32
    assert PopulationModel.CLASSES == CLASSES and PopulationModel.MODES == ("text", "video")
    row = plan.row(n // 2)
    assert row["user_class"] in CLASSES and row["abuse_kind"] in ABUSE_KINDS and row["lang"] in plan.langs


def test_mixes_match_their_parameters(plan):
    model = PopulationModel(dau=1_000_000, abuse_share=0.2)
    probs = class_probabilities(model.params)
    assert stats.chisquare(np.bincount(plan.user_class, minlength=len(CLASSES)), probs * plan.n).pvalue > 1e-3
    lang_p = np.array([model.params.lang_mix[k] for k in plan.langs])
    assert stats.chisquare(np.bincount(plan.lang, minlength=len(plan.langs)), lang_p * plan.n).pvalue > 1e-3
    lo, hi = stats.binom.interval(0.9999, plan.n, 0.5)
    assert lo <= np.count_nonzero(plan.mode == 1) <= hi


def test_abusers_and_their_kinds(plan):
    p = PopulationModel(abuse_share=0.2).params
    is_abuser = plan.user_class == ABUSER
    assert np.array_equal(is_abuser, plan.abuse_kind != 0)
    kinds = np.bincount(plan.abuse_kind[is_abuser], minlength=len(ABUSE_KINDS))[1:]
    mix = np.array([p.abuse_kind_mix[k] for k in ABUSE_KINDS[1:]])
    assert stats.chisquare(kinds, mix * is_abuser.sum()).pvalue > 1e-3
    storm = plan.abuse_kind == ABUSE_KINDS.index("reconnect_storm")
    assert plan.reconnects[storm].mean() == pytest.approx(p.storm_reconnects, rel=0.05)
    assert plan.reconnects[~is_abuser].mean() == pytest.approx(p.reconnects_mean, rel=0.1)
    model = PopulationModel()
    assert model.abuse_behaviour("flooder").message_rate > 5  # above a chat rate limit
    assert model.abuse_behaviour(ABUSE_KINDS.index("malformed")).malformed_share > 0
    with pytest.raises(ValueError, match="unknown abuse kind"):
        model.abuse_behaviour("troll")


def test_same_seed_same_plan_other_seed_other_plan():
    model = PopulationModel(dau=200_000)
    a = model.build(seed=42, hours=2)
    b = model.build(seed=42, hours=2)
    c = model.build(seed=43, hours=2)
    assert a.same_as(b)
    assert not a.same_as(c)
    assert a.n != c.n or not np.array_equal(a.arrival_s, c.arrival_s)


def test_one_parameter_leaves_the_other_columns_alone():
    a = PopulationModel(dau=200_000, interest_share=0.2).build(seed=9, hours=1)
    b = PopulationModel(dau=200_000, interest_share=0.6).build(seed=9, hours=1)
    assert np.array_equal(a.arrival_s, b.arrival_s) and np.array_equal(a.user_class, b.user_class)
    assert np.diff(b.interest_offsets).astype(bool).sum() > 2 * np.diff(a.interest_offsets).astype(bool).sum()


def test_window_and_select_keep_rows_and_interests(plan):
    w = plan.window(3600.0, 7200.0)
    assert w.arrival_s.min() >= 3600 and w.arrival_s.max() < 7200
    first = int(np.searchsorted(plan.arrival_s, 3600.0))
    assert w.n == int(np.searchsorted(plan.arrival_s, 7200.0)) - first
    for i in (0, 1, w.n // 2, w.n - 1):
        assert w.interests_of(i) == plan.interests_of(first + i)
        assert w.row(i)["arrival_s"] == plan.row(first + i)["arrival_s"]
