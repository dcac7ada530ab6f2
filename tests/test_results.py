"""MergedState sums worker reports exactly; build_results fills every key of the contract."""
from __future__ import annotations

import json

import pytest

from harness.histogram import LogHistogram
from harness.ledger import Ledger, UserView, WorkerMetrics, token_text
from harness.results import LATENCY_KEYS, MergedState, build_results

MS = 1_000_000
S = 1_000_000_000
T0 = 1_700_000_000 * S


def worker_report(user: str, peer: str, t: int, relay_ms: list[float], ends_first: bool) -> dict:
    """What one worker ships after one chat of `user` with `peer` (built through the real
    UserView, so the record format is the real one)."""
    ledger, metrics = Ledger(), WorkerMetrics()
    view = UserView(user, ledger, metrics)
    view.joined(t, "text", "en", [])
    view.on_paired(t + 4 * MS, "p1", ends_first, "text")
    view.token_sent(t + 5 * MS)
    view.on_text(t + 6 * MS, token_text(peer, 0))
    for seq, ms in enumerate(relay_ms):
        view.message_sent(t + 10 * MS)
        view.on_message(t + 20 * MS, peer, 0, seq, t + 20 * MS - int(ms * MS))
    if ends_first:
        view.ended_by_us("next", t + S)
        view.on_waiting(t + S + MS)
    else:
        view.on_partner_left(t + S + 2 * MS, "next")
    metrics.sample("connect", 3.0)
    metrics.count("sessions")
    metrics.gauges(t, 7, 2, 4)
    metrics.error("connect_failed")
    data = metrics.drain()
    data.update(ledger.drain())
    return data


def two_workers() -> tuple[MergedState, list[dict]]:
    reports = [
        worker_report("a-0", "b-0", T0, [1.0, 2.0, 3.0], ends_first=True),
        worker_report("b-0", "a-0", T0, [10.0, 20.0, 30.0], ends_first=False),
    ]
    state = MergedState()
    state.merge(reports[0], "w1")
    state.merge(reports[1], "w2")
    return state, reports


def test_merge_sums_histograms_timeline_counters_exactly() -> None:
    state, reports = two_workers()
    union = LogHistogram.merged([r["hist"]["relay"] for r in reports])
    assert state.hist["relay"] == union and state.hist["relay"].count == 6
    assert state.hist["connect"].count == 2
    sec = T0 // S
    assert state.timeline[sec][2] == 14  # online summed over workers
    assert state.counters["sessions"] == 2 and state.counters["paired"] == 2
    assert state.errors == {"connect_failed": 2}
    assert len(state.records) == 2 and state.workers == {"w1", "w2"}


def test_merge_caps_examples() -> None:
    state = MergedState(max_examples=3)
    for _ in range(2):
        state.merge({"incidents": {"cross_talk": 2}, "examples": {"cross_talk": [{"who": "x"}] * 2}}, "w")
    assert state.incidents == {"cross_talk": 4} and len(state.examples["cross_talk"]) == 3


def test_build_results_has_every_contract_key() -> None:
    state, _ = two_workers()
    run = {"scenario": "smoke", "target": "ws://x/ws", "seed": 1, "started": "2024-01-01T00:00:00Z",
           "duration_s": 2, "workers": 2, "users": 4}
    doc = build_results(state, run, T0 - S, T0 + 3 * S)
    json.dumps(doc)  # plain JSON
    assert doc["run"]["scenario"] == "smoke" and doc["run"]["users"] == 4 and doc["run"]["elapsed_s"] == 4.0
    for key in LATENCY_KEYS:
        assert set(doc[key]) >= {"count", "p50", "p90", "p99", "p999", "max"}
    assert doc["relay_latency_ms"]["count"] == 6
    assert doc["relay_latency_ms"]["max"] == pytest.approx(30.0, rel=0.01)
    assert doc["pair_latency_ms"]["count"] == 2
    assert doc["partner_left_latency_ms"]["count"] == 1
    assert doc["partner_left_latency_ms"]["max"] == pytest.approx(2.0, rel=0.01)
    assert doc["signal_rtt_ms"]["count"] == 0 and doc["signal_rtt_ms"]["p99"] is None
    assert doc["throughput"] == {"pairs": 1.0, "messages": 6, "pairs_per_s": 0.25, "messages_per_s": 1.5}
    assert doc["users"]["peak_concurrent"] == 14 and doc["users"]["sessions"] == 2
    c = doc["correctness"]
    for kind in ("double_match", "self_match", "asymmetric_pair", "cross_talk", "after_end_delivery",
                 "lost_messages", "reordered_messages", "ghost_match", "missing_partner_left"):
        assert c[kind] == 0
    assert c["violations_total"] == 0 and c["examples"] == {}
    assert doc["errors"] == {"connect_failed": 2, "total": 2}
    assert set(doc["histograms"]) == {"connect", "pair", "relay", "signal_rtt", "partner_left"}
    assert LogHistogram.from_dict(doc["histograms"]["relay"]) == state.hist["relay"]
    assert doc["timeline"][0]["t"] == 1 and doc["timeline"][0]["online"] == 14
    assert doc["timeline"][0]["pairs"] == 1.0
    assert {t["user"] for t in doc["tickets"]} == {"a-0", "b-0"}
    assert {(t["user"], t["chat"], t["peer"], t["peer_chat"], t["pair"]) for t in doc["tickets"]} == {
        ("a-0", 0, "b-0", 0, "p1"), ("b-0", 0, "a-0", 0, "p1")}
    assert doc["partial"] is False and doc["tickets_total"] == 2
    f = doc["fairness"]
    assert f["tickets"] == 2 and f["pairings"] == 1 and f["unmatched_paired_tickets"] == 0
    assert f["fifo_inversion_rate"] == 0.0 and f["wait_ms"]["max"] == pytest.approx(4.0, abs=1e-3)


def test_build_results_reports_violations_with_examples_and_timeline() -> None:
    state, _ = two_workers()
    state.merge({"incidents": {"cross_talk": 2},
                 "examples": {"cross_talk": [{"who": "a-0", "when": T0 + S, "what": "m"}]},
                 "timeline": {str(T0 // S + 1): [0, 0, 0, 0, 0, 2]}}, "w1")
    doc = build_results(state, {}, T0, T0 + 2 * S, partial=True)
    assert doc["correctness"]["cross_talk"] == 2 and doc["correctness"]["violations_total"] == 2
    assert doc["correctness"]["examples"]["cross_talk"][0]["when"] == pytest.approx((T0 + S) / S)
    assert [p["violations"] for p in doc["timeline"]] == [0, 2]
    assert doc["partial"] is True


def test_gave_up_searches_become_tickets() -> None:
    state = MergedState()
    state.merge({"waits": [{"u": "x-1", "cls": "C", "mode": "video", "lang": "de", "interests": ["a"],
                            "t_req": T0, "t_gave_up": T0 + 2 * S, "how": "leave"}]}, "w")
    doc = build_results(state, {}, T0, T0 + S)
    [t] = doc["tickets"]
    assert t["t_paired"] is None and t["t_gave_up"] == pytest.approx((T0 + 2 * S) / S) and t["lang"] == "de"
    assert doc["users"]["gave_up"] == 1


def test_fairness_uses_every_ticket_even_when_the_sample_is_capped() -> None:
    state, _ = two_workers()
    state.merge({"waits": [{"u": "c-0", "cls": "C", "mode": "text", "lang": "en", "interests": [],
                            "t_req": T0 + S, "t_gave_up": T0 + 3 * S, "how": "leave"}]}, "w3")
    full = build_results(state, {}, T0, T0 + 4 * S)
    capped = build_results(state, {}, T0, T0 + 4 * S, max_tickets=1)
    assert len(capped["tickets"]) == 1 and capped["tickets_total"] == 3
    assert capped["fairness"] == full["fairness"]
    assert full["fairness"]["tickets"] == 3 and full["fairness"]["pairings"] == 1
    assert full["fairness"]["gave_up"] == 1
    # The section can be recomputed from an uncapped sample with the recorded t_end and params.
    from harness.fairness import analyse
    again = analyse(full["tickets"], full["fairness"]["params"], t_end=full["fairness"]["t_end"])
    assert again == full["fairness"]


def test_searches_open_at_the_end_are_censored_tickets() -> None:
    state, _ = two_workers()
    state.merge({"open_searches": [{"u": "d-0", "cls": "C", "mode": "text", "lang": "en", "interests": ["x"],
                                    "t_req": T0 + 2 * S}]}, "w1")
    doc = build_results(state, {}, T0, T0 + 5 * S)
    [t] = [t for t in doc["tickets"] if t["user"] == "d-0"]
    assert t["t_paired"] is None and t["t_gave_up"] is None
    f = doc["fairness"]
    assert f["still_waiting"] == 1 and f["wait_ms"]["max"] == pytest.approx(3000.0, abs=1e-3)  # censored at the end
    assert doc["users"]["gave_up"] == 0  # not a give-up


def test_given_fairness_section_is_used_as_is() -> None:
    state, _ = two_workers()
    doc = build_results(state, {}, T0, T0 + S, fairness={"jain_index": 0.25})
    assert doc["fairness"] == {"jain_index": 0.25}


# -- scenario parameters (they shape every run the results describe) -------------------------
def test_behaviour_params_defaults_overrides_and_typos(monkeypatch: pytest.MonkeyPatch) -> None:
    import random

    from harness.behaviour import Behaviour, BehaviourParams, params_from_env

    monkeypatch.setenv("CHATLOAD_SCENARIO_PARAMS", json.dumps({"chat_median_s": 1.5, "think_time_s": [0, 0.1]}))
    p = params_from_env({"chat_median_s": 9.0, "end_next": 1.0, "end_leave": 0.0, "end_disconnect": 0.0})
    assert p.chat_median_s == 1.5 and p.think_time_s == (0, 0.1) and p.end_next == 1.0
    b1, b2 = Behaviour(p, random.Random("s/u1")), Behaviour(p, random.Random("s/u1"))
    assert b1.preferences() == b2.preferences()  # seeded: reproducible
    assert {b1.end_action() for _ in range(50)} == {"next"}
    assert 0 <= b1.think_time() <= 0.1
    with pytest.raises(ValueError, match="unknown scenario parameter 'chat_mediam_s'"):
        BehaviourParams.build(overrides={"chat_mediam_s": 2})
    with pytest.raises(ValueError, match="4 KiB"):
        BehaviourParams.build(overrides={"sdp_bytes": [3000, 5000]})
    monkeypatch.setenv("CHATLOAD_SCENARIO_PARAMS", "[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        params_from_env()


def _tokenless_chat(user: str, t: int) -> dict:
    """A worker's report of one chat whose partner's token never came (a would-be ghost)."""
    ledger, metrics = Ledger(), WorkerMetrics()
    view = UserView(user, ledger, metrics)
    view.joined(t - S, "text", "en", [])
    view.on_paired(t, "p9", True, "text")
    view.token_sent(t + MS)
    view.ended_by_us("next", t + 6 * S)
    view.on_waiting(t + 6 * S + MS)
    data = metrics.drain()
    data.update(ledger.drain())
    return data


@pytest.mark.parametrize("gave_up_by", ["disconnect", "leave", None])
def test_a_pairing_that_crossed_a_disconnect_is_excused_on_a_backend_without_partner_left(gave_up_by) -> None:
    """The oracle's exemption reaches results.json: the run's give-ups are handed to it."""
    state = MergedState()
    state.merge(_tokenless_chat("a-0", T0 + 10 * S), "w1")
    state.merge({"counters": {"lacks:partner_left": 1}}, "w1")
    if gave_up_by:
        state.merge({"waits": [{"u": "z-0", "cls": "C", "mode": "text", "lang": "en", "interests": [],
                                "t_req": T0 + 5 * S, "t_gave_up": T0 + 10 * S - 200 * MS, "how": gave_up_by}]}, "w2")
    doc = build_results(state, {}, T0, T0 + 20 * S)
    assert doc["correctness"]["ghost_match"] == (0 if gave_up_by == "disconnect" else 1)
