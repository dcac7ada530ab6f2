"""Fairness of live runs: tickets from the harness's own records, and agreement with the simulator.

The unit tests build chat records through the real UserView (so the record format is the
real one) and check that partners' tickets are found. The agreement test runs a real
`chatload run interests` (Locust master and worker subprocesses, the reference server as a
subprocess on 127.0.0.1) and `chatload simulate` on the same population, window and seed,
and checks the tolerances docs/fairness.md ("Live versus simulated") states.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from harness.fairness import analyse
from harness.fairness.live import ENV_PARAMS, live_tickets, open_search, params_for_run
from harness.fairness.tickets import TicketTable
from harness.ledger import Ledger, UserView, WorkerMetrics, token_text
from harness.scenario_config import load as load_scenario
from tests.support import ROOT, reference_server, time_unit

MS = 1_000_000
S = 1_000_000_000
T0 = 1_700_000_000 * S


def chat(ledger: Ledger, user: str, peer: str, t: int, pair: str | None, interests: list[str], chat_of_peer: int = 0,
         view: UserView | None = None) -> UserView:
    """One chat of `user`, seen through the real UserView: join, paired, the partner's token, next."""
    view = view or UserView(user, ledger, WorkerMetrics(), cls="talker")
    view.joined(t, "text", "en", interests)
    view.on_paired(t + 10 * MS, pair, True, "text")
    view.on_text(t + 12 * MS, token_text(peer, chat_of_peer))
    view.ended_by_us("next", t + S)
    view.on_barrier(t + S + MS)
    return view


# -- tickets from live records ------------------------------------------------------------
def test_partners_tickets_are_found_by_their_chat_keys() -> None:
    """The bug this fixes: `peer` was "user#chat" while `user` was "user", so no pairing was found."""
    ledger = Ledger()
    chat(ledger, "w-1.talker", "w-2.skipper", T0, None, ["x"])
    chat(ledger, "w-2.skipper", "w-1.talker", T0 + 3 * MS, None, ["x", "y"])
    tickets = list(live_tickets(ledger.records, ledger.waits))
    assert {(t["user"], t["peer"], t["chat"], t["peer_chat"]) for t in tickets} == {
        ("w-1.talker", "w-2.skipper", 0, 0), ("w-2.skipper", "w-1.talker", 0, 0)}
    f = analyse(tickets)
    assert f["pairings"] == 1 and f["unmatched_paired_tickets"] == 0
    assert f["interest_match_rate"] == 1.0  # derived from both tickets' interests


def test_chat_keys_win_over_reused_pair_ids() -> None:
    """A backend that reuses a pair id for two chats at once cannot join unrelated tickets."""
    ledger = Ledger()
    chat(ledger, "a", "b", T0, "room-1", [])
    chat(ledger, "b", "a", T0, "room-1", [])
    chat(ledger, "c", "d", T0, "room-1", [])
    chat(ledger, "d", "c", T0, "room-1", [])
    t = TicketTable.from_records(list(live_tickets(ledger.records, ledger.waits)))
    names = t.user_names
    partner = {names[t.user[i]]: names[t.user[t.peer_ticket[i]]] for i in range(t.n)}
    assert partner == {"a": "b", "b": "a", "c": "d", "d": "c"}


def test_second_chat_of_the_same_two_users_is_its_own_pairing() -> None:
    ledger = Ledger()
    va = chat(ledger, "a", "b", T0, None, [], chat_of_peer=0)
    vb = chat(ledger, "b", "a", T0, None, [], chat_of_peer=0)
    chat(ledger, "a", "b", T0 + 20 * S, None, [], chat_of_peer=1, view=va)
    chat(ledger, "b", "a", T0 + 20 * S, None, [], chat_of_peer=1, view=vb)
    f = analyse(list(live_tickets(ledger.records, ledger.waits)))
    assert f["pairings"] == 2 and f["repeat_pairings"] == 1


def test_without_tokens_pair_ids_then_times_match_partners() -> None:
    def ticket(user, peer, pair, t_paired):
        return {"user": user, "peer": peer, "pair": pair, "t_join": 0.0, "t_paired": t_paired, "mode": "text"}

    by_pair = [ticket("a", None, "p1", 1.0), ticket("b", None, "p1", 1.001)]
    assert analyse(by_pair)["pairings"] == 1
    by_time = [ticket("a", "b", None, 1.0), ticket("b", "a", None, 1.2), ticket("a", "b", None, 30.0)]
    f = analyse(by_time)
    assert f["pairings"] == 1 and f["unmatched_paired_tickets"] == 1


def test_open_searches_and_give_ups_are_tickets() -> None:
    ledger = Ledger()
    waiting = UserView("w", ledger, WorkerMetrics(), cls="keeper")
    waiting.joined(T0, "video", "de", ["z"])
    quitter = UserView("q", ledger, WorkerMetrics(), cls="impatient")
    quitter.joined(T0, "text", "en", [])
    quitter.gave_up("leave", T0 + 2 * S)
    idle = UserView("i", ledger, WorkerMetrics())
    assert open_search(idle) is None
    opened = open_search(waiting)
    assert opened == {"u": "w", "cls": "keeper", "mode": "video", "lang": "de", "interests": ["z"], "t_req": T0}
    tickets = list(live_tickets(ledger.records, ledger.waits, [opened]))
    f = analyse(tickets, t_end=(T0 + 5 * S) / 1e9)
    assert (f["gave_up"], f["still_waiting"]) == (1, 1)
    assert f["wait_ms"]["max"] == pytest.approx(5000.0, abs=1e-3)  # censored at the run's end


def test_live_rules_follow_the_time_scale_and_the_backend_flags() -> None:
    k10 = load_scenario("interests", overrides={"time_scale": 10})
    p = params_for_run(k10, env={})
    assert p.interest_fallback_s == pytest.approx(0.5) and p.starvation_threshold_s == pytest.approx(3.0)
    assert p.rematch_block_s == pytest.approx(1.0)  # SERVER_ARGS scale the rematch block by K too
    told = load_scenario("interests", overrides={"time_scale": 10, "server.interest-fallback": 2.0,
                                                 "server.rematch-block": 4})
    p = params_for_run(told, env={})
    assert (p.interest_fallback_s, p.rematch_block_s) == (2.0, 4.0)
    embedded = params_for_run(told, env={}, server_args=["--interest-fallback", "0.25", "--rematch-block=3"])
    assert (embedded.interest_fallback_s, embedded.rematch_block_s) == (0.25, 3.0)
    p = params_for_run(None, env={ENV_PARAMS: json.dumps({"fifo_tolerance_s": 0.2})})
    assert p.interest_fallback_s == 5.0 and p.fifo_tolerance_s == 0.2
    with pytest.raises(ValueError, match="fifo_tolerance"):
        params_for_run(None, env={ENV_PARAMS: '{"fifo_tolerance": 1}'})


def test_live_gauges_show_the_results_figures() -> None:
    """/metrics reads the fairness section results.json gets (no second analysis on a sample)."""
    from types import SimpleNamespace

    from harness.live_metrics import LiveMetrics
    from harness.results import MergedState, build_results

    ledger = Ledger()
    chat(ledger, "a", "b", T0, "p", ["x"])
    chat(ledger, "b", "a", T0 + 30 * MS, "p", ["y"])
    quitter = UserView("q", ledger, WorkerMetrics())
    quitter.joined(T0, "text", "en", [])
    quitter.gave_up("leave", T0 + 3 * S)
    state = MergedState()
    state.merge(ledger.drain(), "w")
    doc = build_results(state, {}, T0, T0 + 4 * S, max_tickets=1)
    live = LiveMetrics(SimpleNamespace(state=state, t_start_ns=T0))
    live.on_results(doc)
    lines = dict(line.rsplit(" ", 1) for line in live.render().decode().splitlines() if not line.startswith("#"))
    f = doc["fairness"]
    assert f["tickets"] == 3 and f["pairings"] == 1
    assert float(lines["chatload_fairness_jain_index"]) == pytest.approx(f["jain_index"])
    assert float(lines["chatload_fairness_fifo_inversion_rate"]) == f["fifo_inversion_rate"] == 0.0
    p99 = f["wait_p99_ms_by_cohort"]["cls"]["talker"] / 1000.0
    assert float(lines['chatload_fairness_wait_p99_seconds{dimension="cls",cohort="talker"}']) == pytest.approx(p99)


# -- live versus simulated ------------------------------------------------------------------
K = 10
DURATION_S = 20
SEED = 7
# One flat stretch of the interests scenario, small enough to run in ~25 s next to the
# server on 2 cores: 15 arrivals a real second, 60% with interests over a 200-topic
# vocabulary, two languages (so pools and the fallback matter), short visits. Patience is
# long: give-ups are not what is compared.
POPULATION = """
dau = 129600
peak_to_trough = 1.0
interest_share = 0.6
interest_vocab = 200
lang_mix = {en = 0.7, es = 0.3}
tail_share = 0.0
abuse_share = 0.0
reconnects_mean = 0.0
chats_mean = {skipper = 3.0, talker = 2.0, keeper = 2.0, impatient = 2.0, abuser = 3.0}
patience_median_s = {skipper = 600.0, talker = 600.0, keeper = 600.0, impatient = 600.0, abuser = 600.0}
"""
# Tolerances (docs/fairness.md, "Live versus simulated"): absolute for shares, relative for
# waits (live waits x K, in model time). Each is at least 4 standard deviations of the
# live-minus-simulated difference estimated from 20 simulations of this plan.
TOL = {"jain_index": 0.07, "interest_match_rate": 0.10, "fallback_rate": 0.10}
WAIT_TOL = {"p50": 0.6, "p90": 0.25, "p99": 0.4}
PAIRINGS_TOL = 0.08
LIVE_INVERSION_MAX = 0.02


@pytest.fixture(scope="module")
def live_and_sim(tmp_path_factory) -> tuple[dict, dict]:
    d = tmp_path_factory.mktemp("fair_agree")
    live_params = d / "live.toml"
    live_params.write_text(f"time_scale = {K}\n[population]\n{POPULATION}")
    # SERVER_ARGS scale the server's fallback and rematch block by K, so the simulated
    # matcher keeps the protocol's defaults in model time.
    sim_params = d / "sim.toml"
    sim_params.write_text(f"[population]\n{POPULATION}")
    scenario = load_scenario("interests", overrides=tomllib.loads(live_params.read_text()))
    with reference_server(*scenario.server_args()) as (base, _proc):
        target = base.replace("http://", "ws://") + "/ws"
        live = subprocess.run(
            [sys.executable, "-m", "harness.cli", "run", "interests", "--target", target, "--users", "60",
             "--workers", "1", "--duration", str(DURATION_S), "--seed", str(SEED), "--params", str(live_params),
             "--out", str(d / "live")],
            cwd=ROOT, capture_output=True, text=True, timeout=120 * time_unit())
    assert live.returncode == 0, f"{live.stdout[-2000:]}\n{live.stderr[-2000:]}"
    sim = subprocess.run(
        [sys.executable, "-m", "harness.cli", "simulate", "--hours", repr(DURATION_S * K / 3600), "--seed", str(SEED),
         "--params", str(sim_params), "--out", str(d / "sim"), "--quiet"],
        cwd=ROOT, capture_output=True, text=True, timeout=60 * time_unit())
    assert sim.returncode == 0, sim.stderr
    return (json.loads((d / "live" / "results.json").read_text()),
            json.loads((d / "sim" / "results.json").read_text()))


@pytest.mark.slow
def test_live_and_simulator_agree(live_and_sim) -> None:
    live_doc, sim_doc = live_and_sim
    live, sim = live_doc["fairness"], sim_doc["fairness"]
    table = "\n".join(f"{k:22} live {live.get(k)!r:>24} sim {sim.get(k)!r:>24}" for k in (
        "tickets", "pairings", "unmatched_paired_tickets", "jain_index", "fifo_inversion_rate",
        "interest_match_rate", "fallback_rate", "gave_up", "still_waiting"))
    table += "".join(f"\nwait {q:17} live x K {live['wait_ms'][q] * K:>19.1f} sim {sim['wait_ms'][q]:>24.1f}"
                     for q in WAIT_TOL)
    print(table)
    # The live section is the analysis of every live ticket, with the run's own rules.
    assert live_doc["tickets_total"] == live["tickets"] > 500
    assert live["unmatched_paired_tickets"] == 0 and live["pairings"] > 300
    assert live["params"]["interest_fallback_s"] == pytest.approx(5.0 / K)
    assert live_doc["arrivals"]["dropped_arrivals"] == 0, "the load generator fell behind: not comparable"
    # Queue order: the reference core never inverts; live, only network reordering past the tolerance could.
    assert sim["fifo_inversion_rate"] == 0.0
    assert live["fifo_inversion_rate"] <= LIVE_INVERSION_MAX, table
    assert abs(live["pairings"] - sim["pairings"]) <= PAIRINGS_TOL * sim["pairings"], table
    for key, tol in TOL.items():
        assert abs(live[key] - sim[key]) <= tol, f"{key}\n{table}"
    for q, rel in WAIT_TOL.items():
        assert abs(live["wait_ms"][q] * K - sim["wait_ms"][q]) <= rel * sim["wait_ms"][q], f"wait {q}\n{table}"
