"""Deliberately unfair matchers show their signal in the simulator; the reference core shows none."""
from __future__ import annotations

import pytest

from harness.fairness import analyse
from harness.simulate import simulate
from reference_server.core import PairingCore

from . import unfair_matchers as um
from .sim_population import small_model


@pytest.fixture(scope="module")
def model_plan():
    model = small_model()
    return model, model.build(seed=3, hours=0.2)


def run(model_plan, matcher):
    model, plan = model_plan
    sim = simulate(plan, matcher, model.chat_length_s, seed=1, class_names=model.CLASSES)
    assert sim.pairings > 1000
    return analyse(sim.tickets)


@pytest.fixture(scope="module")
def core(model_plan):
    return run(model_plan, PairingCore())


def test_reference_core_is_fair(core):
    assert core["fifo_inversions"] == 0
    assert core["starved_detail"]["gave_up_passed_over"] == 0
    assert core["worst_to_best_p99_by_dimension"]["lang"]["ratio"] < 1.5
    assert core["worst_to_best_p99_by_dimension"]["interests"]["ratio"] < 2.5


def test_lifo_inverts_queue_order(model_plan, core):
    lifo = run(model_plan, um.LifoMatcher())
    assert lifo["fifo_inversion_rate"] > 0.02
    assert lifo["fifo_inversions"] > 50


def test_random_pick_inverts_queue_order(model_plan):
    rnd = run(model_plan, um.RandomMatcher())
    assert rnd["fifo_inversion_rate"] > 0.01
    assert rnd["fifo_inversions"] > 30


def test_interest_starver_starves_interest_users(model_plan, core):
    starver = run(model_plan, um.InterestStarver())
    dim = starver["worst_to_best_p99_by_dimension"]["interests"]
    assert dim["worst"] == "interests" and dim["ratio"] > 3 * core["worst_to_best_p99_by_dimension"]["interests"]["ratio"]
    assert starver["starved_detail"]["gave_up_passed_over"] > 20
    assert starver["starved"] > core["starved"] + 50
    assert starver["fifo_inversion_rate"] > 0.1  # fallen-back interest users passed over for open ones


def test_language_first_delays_other_languages(model_plan, core):
    lf = run(model_plan, um.LanguageFirst())
    dim = lf["worst_to_best_p99_by_dimension"]["lang"]
    assert (dim["worst"], dim["best"]) == ("es", "en")
    assert dim["ratio"] > 2.0 > 1.5 > core["worst_to_best_p99_by_dimension"]["lang"]["ratio"]
    p99 = lf["wait_p99_ms_by_cohort"]["lang"]
    assert p99["es"] > 10_000 > p99["en"]
