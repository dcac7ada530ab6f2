"""Interests: share with any, 1-3 each, distinct, Zipf popularity over the vocabulary."""
from __future__ import annotations

import numpy as np
from scipy import stats

from harness.population import PopulationModel
from harness.population.interests import draw_interests, zipf_probabilities

N = 100_000


def test_share_counts_and_distinct():
    p = PopulationModel(interest_share=0.6).params
    offsets, ids = draw_interests(p, np.random.default_rng(1), N)
    counts = np.diff(offsets)
    assert offsets.shape == (N + 1,) and ids.dtype == np.int32 and offsets[-1] == ids.shape[0]
    lo, hi = stats.binom.interval(0.9999, N, 0.6)
    assert lo <= np.count_nonzero(counts) <= hi
    with_any = counts[counts > 0]
    assert set(np.unique(with_any)) == {1, 2, 3}
    # uniform 1-3 among those with interests
    observed = np.bincount(with_any, minlength=4)[1:]
    assert stats.chisquare(observed).pvalue > 1e-3
    for i in np.flatnonzero(counts > 1)[:20_000]:
        mine = ids[offsets[i]:offsets[i + 1]]
        assert len(set(mine.tolist())) == mine.size
    assert ids.min() >= 0 and ids.max() < 10_000


def test_first_interest_is_zipf_chi_square():
    p = PopulationModel(interest_share=1.0, interests_max=1).params
    offsets, ids = draw_interests(p, np.random.default_rng(2), N)
    probs = zipf_probabilities(10_000, 1.0)
    top = 40
    observed = np.append(np.bincount(ids, minlength=10_000)[:top], np.count_nonzero(ids >= top))
    expected = np.append(probs[:top], probs[top:].sum()) * N
    assert stats.chisquare(observed, expected).pvalue > 1e-3
    # power: a flatter exponent is rejected
    flatter = zipf_probabilities(10_000, 0.8)
    expected_flat = np.append(flatter[:top], flatter[top:].sum()) * N
    assert stats.chisquare(observed, expected_flat).pvalue < 1e-6


def test_no_interests_when_share_is_zero_and_names():
    model = PopulationModel(interest_share=0.0, dau=50_000)
    plan = model.build(seed=3, hours=1)
    assert plan.interest_ids.size == 0 and np.all(plan.interest_offsets == 0)
    plan2 = PopulationModel(interest_share=1.0, dau=50_000).build(seed=3, hours=1)
    names = plan2.interests_of(0)
    assert 1 <= len(names) <= 3 and all(n.startswith("t") and n[1:].isdigit() for n in names)
