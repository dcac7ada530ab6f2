"""Chat lengths, who presses next, chats per visit, patience, messages: fitted against their parameters."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from harness.population import PopulationModel
from harness.population.classes import ABUSER, IMPATIENT, KEEPER, SKIPPER, TALKER, PairTable
from harness.population.chats import draw_chats_per_visit, draw_messages, draw_patience

N = 20_000


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_skips_are_lognormal_with_their_median():
    model = PopulationModel(skip_propensity={c: 1.0 for c in PopulationModel.CLASSES})
    d, _ = model.chat_length_s(SKIPPER, TALKER, rng(1), size=N)
    assert stats.kstest(d, stats.lognorm(s=0.45, scale=3.0).cdf).pvalue > 1e-3
    assert np.median(d) == pytest.approx(3.0, rel=0.03)


def test_conversations_are_lognormal_median_25_sigma_1_2():
    model = PopulationModel(skip_propensity={c: 0.0 for c in PopulationModel.CLASSES}, tail_share=0.0)
    d, _ = model.chat_length_s(TALKER, TALKER, rng(2), size=N)
    assert stats.kstest(d, stats.lognorm(s=1.2, scale=25.0).cdf).pvalue > 1e-3
    # power: the same sample is far from a 30 s median
    assert stats.kstest(d, stats.lognorm(s=1.2, scale=30.0).cdf).pvalue < 1e-6


def test_tail_is_pareto_truncated_to_10_60_minutes():
    model = PopulationModel(skip_propensity={c: 0.0 for c in PopulationModel.CLASSES}, tail_share=1.0)
    d, _ = model.chat_length_s(TALKER, TALKER, rng(3), size=N)
    assert d.min() >= 600 and d.max() <= 3600
    reference = stats.truncpareto(b=1.5, c=6.0, scale=600.0)  # scipy's own truncated Pareto
    assert stats.kstest(d, reference.cdf).pvalue > 1e-3


@pytest.mark.parametrize("a, b", [(SKIPPER, TALKER), (TALKER, KEEPER), (SKIPPER, ABUSER), (IMPATIENT, SKIPPER)])
def test_full_mixture_matches_its_cdf_and_mean(a, b):
    model = PopulationModel()
    d, _ = model.chat_length_s(a, b, rng(4 + a + 5 * b), size=N)
    assert stats.kstest(d, lambda x: model.chat_model.cdf(x, a, b)).pvalue > 1e-3
    # mean of a heavy-ish mixture: compare with a loose but real bound (5 standard errors)
    assert abs(d.mean() - model.chat_model.mean(a, b)) < 5 * d.std() / np.sqrt(N)


def test_who_presses_next_depends_on_both_classes():
    model = PopulationModel()
    table = PairTable(model.params)
    # facing a keeper, partners skip and end much less: chats with a keeper are longer
    d_keeper, who_k = model.chat_length_s(SKIPPER, KEEPER, rng(5), size=N)
    d_talker, _ = model.chat_length_s(SKIPPER, TALKER, rng(6), size=N)
    assert np.median(d_keeper) > np.median(d_talker)
    assert table.pair_skip(np.intp(SKIPPER), np.intp(KEEPER)) < table.pair_skip(np.intp(SKIPPER), np.intp(TALKER))
    # the share of chats that a ends matches the table, inside a binomial interval
    for a, b, seed in ((SKIPPER, TALKER, 7), (TALKER, ABUSER, 8), (KEEPER, SKIPPER, 9)):
        d, who = model.chat_length_s(a, b, rng(seed), size=N)
        ps = table.pair_skip(np.intp(a), np.intp(b))
        p_a = ps * table.a_ends_skip(np.intp(a), np.intp(b)) + (1 - ps) * table.a_ends_talk(np.intp(a), np.intp(b))
        lo, hi = stats.binom.interval(0.9999, N, p_a)
        assert lo <= np.count_nonzero(who == 0) <= hi, (a, b)
    # asymmetric: a skipper facing a talker ends most of their chats, and swapping sides mirrors it
    _, who_ab = model.chat_length_s(SKIPPER, TALKER, rng(10), size=N)
    _, who_ba = model.chat_length_s(TALKER, SKIPPER, rng(10), size=N)
    assert (who_ab == 0).mean() > 0.6
    assert (who_ba == 1).mean() == pytest.approx((who_ab == 0).mean(), abs=0.02)
    # partners end most chats with abusers; between equals it is a coin toss
    _, who_abuse = model.chat_length_s(TALKER, ABUSER, rng(11), size=N)
    _, who_equal = model.chat_length_s(TALKER, TALKER, rng(12), size=N)
    assert (who_abuse == 0).mean() > 0.7
    assert (who_equal == 0).mean() == pytest.approx(0.5, abs=0.02)


def test_scalar_call_returns_python_scalars_and_arrays_broadcast():
    model = PopulationModel()
    d, who = model.chat_length_s(0, 1, rng(12))
    assert isinstance(d, float) and who in (0, 1)
    d2, who2 = model.chat_length_s(np.array([0, 1, 2]), np.array([4, 3, 2]), rng(13))
    assert d2.shape == (3,) and who2.dtype == np.int8


def test_patience_lognormal_per_class():
    model = PopulationModel()
    p = model.params
    classes = np.full(N, IMPATIENT, dtype=np.int8)
    x = draw_patience(p, classes, rng(14))
    assert x.dtype == np.float32
    assert stats.kstest(x.astype(float), stats.lognorm(s=p.patience_sigma, scale=p.patience_median_s["impatient"]).cdf).pvalue > 1e-3
    y = draw_patience(p, np.full(N, TALKER, dtype=np.int8), rng(15))
    assert np.median(y) > 10 * np.median(x)


def test_chats_per_visit_geometric_with_the_class_mean():
    p = PopulationModel().params
    for cls, name in ((SKIPPER, "skipper"), (TALKER, "talker")):
        c = draw_chats_per_visit(p, np.full(N, cls, dtype=np.int8), rng(16 + cls))
        mean = p.chats_mean[name]
        assert c.min() >= 1 and c.dtype == np.int16
        sd = np.sqrt((1 - 1 / mean) * mean**2)
        assert abs(c.mean() - mean) < 5 * sd / np.sqrt(N)
        # geometric: P(C = 1) = 1 / mean
        lo, hi = stats.binom.interval(0.9999, N, 1 / mean)
        assert lo <= np.count_nonzero(c == 1) <= hi


def test_messages_poisson_in_rate_times_duration():
    model = PopulationModel()
    dur = np.full(N, 100.0)
    m = draw_messages(model.params, np.full(N, TALKER), dur, rng(17))
    assert m.mean() == pytest.approx(15.0, rel=0.02)
    assert m.var() / m.mean() == pytest.approx(1.0, abs=0.1)
    video = draw_messages(model.params, np.full(N, TALKER), dur, rng(18), mode=1)
    assert video.mean() == pytest.approx(15.0 * model.params.video_message_factor, rel=0.05)
    assert model.messages_rate(TALKER) == 0.15
    assert model.messages_rate(ABUSER) > model.messages_rate(TALKER)  # spam and floods
