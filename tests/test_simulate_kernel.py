"""The C simulation kernel gives exactly what the Python engine gives with the reference core.

Differential: the same plan, sampler and seed through `simulate(engine="python")` (the
Python loop driving reference_server.core.PairingCore) and `simulate(engine="kernel")`
must give equal ticket columns and counters, on random small plans built to collide
(a tiny interest vocabulary, times on a half-second grid so that events tie) and on
real population plans.
"""
from __future__ import annotations

import dataclasses
import math
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.population import PopulationModel
from harness.population.model import Plan
from harness.simulate import kernel, make_matcher, simulate
from reference_server.core import PairingCore

from . import unfair_matchers as um
from .sim_population import small_model
from .support import ROOT, time_unit

pytestmark = pytest.mark.skipif(
    kernel._kernel is None, reason="harness.simulate._kernel is not built (pip install -e . or "
                                   "python setup.py build_ext --inplace builds it)")

COLUMNS = ("user", "cls", "mode", "lang", "interest_offsets", "interest_ids", "t_join", "t_paired", "t_gave_up",
           "peer", "peer_ticket", "via_interest", "t_chat_end")
COUNTERS = ("visits", "pairings", "gave_up", "peak_online", "events", "horizon_s")


@pytest.fixture(autouse=True)
def _kernel_enabled(monkeypatch):
    monkeypatch.delenv(kernel.ENV, raising=False)


def assert_same(py, kn) -> None:
    for name in COUNTERS:
        assert getattr(kn, name) == getattr(py, name), name
    a, b = py.tickets, kn.tickets
    for name in COLUMNS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape, name
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), name
    for name in ("t_end", "cls_names", "mode_names", "lang_names", "interest_names"):
        assert getattr(a, name) == getattr(b, name), name


def both(plan, sampler, *, fb=5.0, rb=10.0, seed=1, **kw):
    py = simulate(plan, PairingCore(fb, rb), sampler, seed=seed, engine="python", **kw)
    kn = simulate(plan, PairingCore(fb, rb), sampler, seed=seed, engine="kernel", **kw)
    return py, kn


# ------------------------------------------------------------------ random small plans
def grid_sampler(step: float = 0.5, top: int = 10):
    """Chat lengths on a grid (0 included), so chat ends tie with each other and with arrivals."""
    def sample(ca, cb, rng, size):
        d = rng.integers(0, top + 1, size=size) * step + (ca + cb) * 0.0
        return d.astype(np.float64), rng.integers(0, 2, size=size).astype(np.int8)
    return sample


def make_plan(arrival, cls, mode, lang, interests, patience, chats, langs, hours) -> Plan:
    n = len(arrival)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum([len(i) for i in interests], out=offsets[1:])
    ids = np.array([k for i in interests for k in i], dtype=np.int32)
    return Plan(arrival_s=np.asarray(arrival, dtype=np.float64), user_class=np.asarray(cls, dtype=np.int8),
                mode=np.asarray(mode, dtype=np.int8), lang=np.asarray(lang, dtype=np.int16),
                interest_offsets=offsets, interest_ids=ids, patience_s=np.asarray(patience, dtype=np.float32),
                chats=np.asarray(chats, dtype=np.int16), abuse_kind=np.zeros(n, dtype=np.int8),
                reconnects=np.zeros(n, dtype=np.int16), langs=langs, seed=0, start_hour=0.0, hours=hours)


@st.composite
def small_plans(draw):
    n = draw(st.integers(1, 60))
    ticks = sorted(draw(st.lists(st.integers(0, 120), min_size=n, max_size=n)))
    langs = ("en", "es", "pt")[: draw(st.integers(1, 3))]
    row = lambda strat: draw(st.lists(strat, min_size=n, max_size=n))  # noqa: E731
    interests = row(st.lists(st.integers(0, 4), max_size=3))  # repeats on purpose: the core dedups
    patience = row(st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.5, 7.0, 20.0, math.inf]))
    plan = make_plan([t * 0.5 for t in ticks], row(st.integers(0, 2)), row(st.integers(0, 1)),
                     row(st.integers(0, len(langs) - 1)), interests, patience, row(st.integers(0, 4)), langs,
                     hours=draw(st.sampled_from([0.01, 0.02, 0.05])))
    return plan


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(plan=small_plans(), fb=st.sampled_from([0.0, 0.5, 1.0, 2.5, 5.0]), rb=st.sampled_from([0.0, 0.5, 1.0, 3.0, 10.0]),
       horizon=st.one_of(st.none(), st.sampled_from([0.0, 10.0, 25.5, 40.0, 90.0])), seed=st.integers(0, 3),
       step=st.sampled_from([0.5, 1.0, 2.5]))
def test_kernel_equals_python_engine_on_small_plans(plan, fb, rb, horizon, seed, step):
    py, kn = both(plan, grid_sampler(step), fb=fb, rb=rb, seed=seed, horizon_s=horizon,
                  class_names=("a", "b", "c"))
    assert_same(py, kn)


def test_kernel_equals_python_engine_on_empty_runs():
    empty = make_plan([], [], [], [], [], [], [], ("en",), hours=0.01)
    assert_same(*both(empty, grid_sampler()))
    late = make_plan([5.0, 6.0], [0, 1], [0, 0], [0, 0], [[1], [1]], [3.0, 3.0], [2, 2], ("en",), hours=0.01)
    for horizon in (1.0, -5.0):  # nothing arrives before the horizon
        assert_same(*both(late, grid_sampler(), horizon_s=horizon))


# ------------------------------------------------------------------ real population plans
def test_kernel_equals_python_engine_at_the_peak_of_3m_daily_users():
    model = PopulationModel(dau=3_000_000)
    plan = model.build(seed=7, start_hour=2.0, hours=0.08)  # > 262k tickets reserved: prefaulting runs
    py, kn = both(plan, model.chat_length_s, seed=3, mode_names=model.MODES, class_names=model.CLASSES)
    assert py.pairings > 5_000 and py.gave_up > 0
    assert_same(py, kn)


def test_kernel_equals_python_engine_with_many_shared_interests():
    model = PopulationModel(dau=3_000_000, interest_share=0.7, interest_vocab=40, lang_mix={"en": 0.5, "es": 0.5})
    plan = model.build(seed=11, start_hour=2.0, hours=0.03)
    py, kn = both(plan, model.chat_length_s, fb=8.0, rb=20.0, seed=5, mode_names=model.MODES,
                  class_names=model.CLASSES)
    assert py.tickets.via_interest.sum() > 1_000
    assert_same(py, kn)


def test_kernel_equals_python_engine_without_timers():
    model = small_model()
    plan = model.build(seed=4, hours=0.1)
    py, kn = both(plan, model.chat_length_s, fb=0.0, rb=0.0, seed=2, class_names=model.CLASSES)
    assert_same(py, kn)


# ------------------------------------------------------------------ outside the kernel's conditions
def test_negative_chat_lengths_hand_over_to_the_python_engine():
    def sampler(ca, cb, rng, size):
        d, w = grid_sampler()(ca, cb, rng, size)
        d[::7] = -1.0  # events in the past: the kernel's event order would not be the engine's
        return d, w
    model = small_model()
    plan = model.build(seed=1, hours=0.03)
    py, kn = both(plan, sampler, seed=4)
    assert_same(py, kn)


def test_unsorted_arrivals_hand_over_to_the_python_engine():
    model = small_model()
    plan = model.build(seed=2, hours=0.03)
    arrival = plan.arrival_s.copy()
    arrival[10], arrival[20] = arrival[20], arrival[10]
    plan = dataclasses.replace(plan, arrival_s=arrival)
    py, kn = both(plan, model.chat_length_s, seed=1)
    assert_same(py, kn)


# ------------------------------------------------------------------ errors
def test_a_failing_sampler_propagates():
    calls = []

    def sampler(ca, cb, rng, size):
        calls.append(1)
        if len(calls) > 3:  # fail mid-run, with blocks, tickets and events allocated
            raise RuntimeError("sampler broke")
        return grid_sampler()(ca, cb, rng, size)
    plan = PopulationModel(dau=3_000_000).build(seed=3, start_hour=2.0, hours=0.08)  # prefaulting too
    with pytest.raises(RuntimeError, match="sampler broke"):
        simulate(plan, make_matcher(), sampler, engine="kernel")
    assert len(calls) == 4


def test_a_sampler_returning_garbage_is_an_error():
    plan = small_model().build(seed=3, hours=0.01)
    with pytest.raises(ValueError):
        simulate(plan, make_matcher(), lambda ca, cb, rng, size: (np.zeros(0), np.zeros(0, np.int8)), engine="kernel")


def test_interrupt_from_the_progress_callback_propagates():
    seen: list[float] = []

    def progress(frac: float) -> None:
        seen.append(frac)
        if frac > 0.3:
            raise KeyboardInterrupt
    model = small_model()
    with pytest.raises(KeyboardInterrupt):
        simulate(model.build(seed=3, hours=0.05), make_matcher(), model.chat_length_s, progress=progress,
                 engine="kernel")
    assert 0.3 < seen[-1] < 1.0


def test_progress_runs_to_one():
    seen: list[float] = []
    model = small_model()
    simulate(model.build(seed=3, hours=0.02), make_matcher(), model.chat_length_s, progress=seen.append,
             engine="kernel")
    assert len(seen) > 50 and seen == sorted(seen) and seen[-1] == 1.0


# ------------------------------------------------------------------ when the kernel stands in
@pytest.mark.parametrize("matcher", [um.LifoMatcher(), um.RandomMatcher(), um.InterestStarver(),
                                     um.LanguageFirst(), um.ListMatcher()])
def test_custom_matchers_keep_the_python_engine(matcher):
    assert not kernel.usable(matcher)
    plan = small_model().build(seed=3, hours=0.01)
    with pytest.raises(ValueError, match="not the reference PairingCore"):
        simulate(plan, matcher, grid_sampler(), engine="kernel")


def test_a_used_core_is_not_usable():
    core = PairingCore()
    assert kernel.usable(core)
    core.join("x", 0.0)
    assert not kernel.usable(core)
    assert "used" in kernel.unusable_reason(core)


def test_a_lookalike_of_the_core_is_not_usable():
    lookalike = type("PairingCore", (), {"__module__": __name__})  # same name, another module
    assert "not the reference PairingCore" in kernel.unusable_reason(lookalike())


def test_the_environment_switch_disables_it(monkeypatch):
    monkeypatch.setenv(kernel.ENV, "0")
    assert not kernel.usable(PairingCore())
    model = small_model()
    core = PairingCore()
    simulate(model.build(seed=3, hours=0.01), core, model.chat_length_s)  # auto: the Python engine
    assert core.pairs_total > 0


def test_auto_runs_the_kernel_for_a_fresh_core():
    model = small_model()
    core = PairingCore()
    sim = simulate(model.build(seed=3, hours=0.01), core, model.chat_length_s)
    assert sim.pairings > 0
    assert core.pairs_total == 0 and kernel.usable(core)  # the kernel only read its settings


def test_unknown_engine_is_an_error():
    with pytest.raises(ValueError, match="engine"):
        simulate(small_model().build(seed=3, hours=0.01), PairingCore(), grid_sampler(), engine="fast")


def test_benchmark_smoke():
    proc = subprocess.run([sys.executable, "benchmarks/simulate_kernel.py", "--smoke"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120 * time_unit())
    assert proc.returncode == 0, proc.stderr
    out = dict(kv.split("=", 1) for line in proc.stdout.splitlines() for kv in line.split() if "=" in kv)
    assert out["same_counts"] == "True" and int(out["window_events"]) > 0
    assert float(out["kernel_events_per_s"]) > 0 and float(out["python_events_per_s"]) > 0


def test_ctrl_c_stops_the_kernel_mid_run():
    # No progress callback: the interrupt is seen by the kernel's own signal check (every ~1M
    # events) or by the sampler's Python code, whichever comes first. The day would run on.
    code = ("import sys\n"
            "from harness.population import PopulationModel\n"
            "from harness.simulate import make_matcher, simulate\n"
            "m = PopulationModel(dau=3_000_000)\n"
            "plan = m.build(seed=1, hours=24.0)\n"
            "print('go', flush=True)\n"
            "simulate(plan, make_matcher(), m.chat_length_s, engine='kernel')\n"
            "print('finished', flush=True)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "go"
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120 * time_unit())
    finally:
        proc.kill()
    assert "finished" not in out
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
