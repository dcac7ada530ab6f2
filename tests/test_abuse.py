"""Abuse in the population: abusers act, the backend reacts, benign users are judged fairly.

Units (pure): the tally counts each abuser visit once with its reaction times; the
`abuse` section joins chat records by the visitor labels; both partners of a chat draw
the same length and ender. Live: a swarm with many abusers against the reference server
with report bans on per-visitor addresses (X-Forwarded-For): flooders get throttled,
reported users get banned, and benign users see no violation and no error.
"""
from __future__ import annotations

import random
from pathlib import Path

import pytest

from harness.abuse import AbuserLog, AbuseTally, MergedAbuse, abuse_section, label_of
from harness.population import PopulationModel
from harness.population.timescale import TimeScale
from harness.scenario_config import HarnessOptions, load
from harness.visit_behaviour import VisitBehaviour, chat_rng, class_index, forwarded_address
from tests.support import reference_server
from tests.swarm_support import run_swarm
from tests.test_scenarios import SMOKE

MS = 1_000_000


def test_labels_from_visitor_ids() -> None:
    assert label_of("ab12cd-7.flooder") == "flooder" and label_of("ab12cd-7.skipper") == "skipper"
    assert label_of("ab12cd-7") is None and label_of(None) is None
    assert class_index("keeper") == 2 and class_index("spammer") == 4 and class_index(None) == 1


def test_tally_counts_each_visit_once_with_reaction_times() -> None:
    tally = AbuseTally()
    log = AbuserLog("flooder")
    tally.start(log)
    log.abused(1_000 * MS)
    log.abused(2_000 * MS)  # only the first abuse counts
    log.react("throttled", 1_250 * MS)
    log.react("throttled", 1_900 * MS)
    log.react("disconnected", 3_000 * MS)
    live = AbuserLog("reported")
    tally.start(live)
    tally.finish(log)
    tally.finish(log)  # a second finish changes nothing
    tally.fold_live()  # the run ends with `live` still going
    d = tally.drain()
    assert d["by_kind"]["flooder"] == {"visits": 1, "abused": 1, "throttled": 1, "banned": 0, "disconnected": 1}
    assert d["by_kind"]["reported"]["visits"] == 1 and d["by_kind"]["reported"]["abused"] == 0
    merged = MergedAbuse()
    merged.merge(d)
    merged.merge(AbuseTally().drain())
    section = abuse_section(merged, [])
    assert section["throttled"] == 1 and section["disconnected"] == 1 and section["abuser_visits"] == 2
    assert section["time_to_throttle_ms"]["p50"] == pytest.approx(250.0, rel=0.01)
    assert section["time_to_disconnect_ms"]["max"] == pytest.approx(2000.0, rel=0.01)


def _rec(u: str, c: int, cls: str, peer: str | None, t_req: int = 0, t_paired: int = 5 * MS) -> dict:
    return {"u": u, "c": c, "cls": cls, "peer": None if peer is None else [peer, 0], "t_req": t_req,
            "t_paired": t_paired, "end": "next"}


def test_benign_exposure_and_pair_latency_come_from_records() -> None:
    records = [
        _rec("w-1.skipper", 0, "skipper", "w-2.flooder"),
        _rec("w-1.skipper", 1, "skipper", "w-3.talker", t_paired=15 * MS),
        _rec("w-3.talker", 0, "talker", "w-1.skipper"),
        _rec("w-3.talker", 1, "talker", None),  # no token: not a known partner
        _rec("w-2.flooder", 0, "abuser", "w-1.skipper"),  # abusers' own chats are not benign
    ]
    s = abuse_section(MergedAbuse(), records)
    assert s["benign_chats"] == 3 and s["benign_chats_with_abuser"] == 1
    assert s["benign_exposure"] == pytest.approx(1 / 3, rel=1e-4)
    assert s["benign_pair_latency_ms"]["count"] == 4 and s["benign_pair_latency_ms"]["max"] == pytest.approx(15.0, rel=0.01)


def _visit(cls: str, kind: str = "none", k: float = 10.0, mode: str = "text") -> VisitBehaviour:
    row = {"user_class": cls, "abuse_kind": kind, "mode": mode, "patience_s": 60.0, "chats": 5, "reconnects": 0}
    return VisitBehaviour(row, PopulationModel(), TimeScale(k), random.Random(1), HarnessOptions())


def test_both_partners_draw_the_same_chat() -> None:
    for i in range(200):
        a, b = _visit("skipper"), _visit("abuser", "spammer")
        ka, kb = (f"w-{i}.skipper", i % 3), (f"v-{i}.spammer", 0)
        len_a, a_ends = a.draw_chat(7, ka, kb, "spammer")
        len_b, b_ends = b.draw_chat(7, kb, ka, "skipper")
        assert len_a == len_b and a_ends != b_ends  # same length, exactly one of them ends it
    assert chat_rng(7, ("a", 1), ("b", 2)).random() == chat_rng(7, ("b", 2), ("a", 1)).random()


def test_time_scale_divides_durations_and_multiplies_rates() -> None:
    slow, fast = _visit("talker", k=1.0), _visit("talker", k=10.0)
    assert fast.rate == pytest.approx(10 * slow.rate)
    # Patience is not rescaled here: plan_to_real already put it on the real clock.
    assert _visit("abuser", "flooder", k=1.0).rate == PopulationModel().params.flood_rate


def test_benign_users_report_abusers_only() -> None:
    v = _visit("talker")
    assert not any(v.reports("skipper") for _ in range(100))
    assert sum(v.reports("reported") for _ in range(1000)) > 700  # report_probability 0.8
    assert not any(_visit("abuser", "spammer").reports("reported") for _ in range(100))


def test_synthetic_addresses_are_distinct() -> None:
    addrs = {forwarded_address(i) for i in range(70_000)}
    assert len(addrs) == 70_000 and forwarded_address(0) == "10.0.0.1"


def test_abusers_are_throttled_and_banned_and_benign_users_see_no_violation(tmp_path: Path) -> None:
    params = {**SMOKE, "abuse_share": 0.45, "video_share": 0.2, "report_probability": 1.0,
              "abuse_kind_mix": {"spammer": 0.1, "flooder": 0.3, "reported": 0.4, "reconnect_storm": 0.05,
                                 "malformed": 0.15},
              "malformed_share": 0.8, "server.report-threshold": 2}
    cfg = load("abuse", overrides=params)
    assert "--trust-forwarded-for" in cfg.server_args()
    with reference_server(*cfg.server_args()) as (base, _server):
        run = run_swarm("abuse", base.replace("http://", "ws://") + "/ws", tmp_path, params, 8, 30, workers=1)
    r = run["results"]
    assert r is not None and run["rc"] == 0, run["logs"]
    ab = r["abuse"]
    assert ab["abusers"]["flooder"] > 0 and ab["abusers"]["reported"] > 0, ab
    assert ab["by_kind"]["flooder"]["throttled"] > 0, ab  # rate_limited seen
    assert ab["banned"] > 0 and ab["time_to_ban_ms"]["count"] == ab["banned"], ab  # reports by 2 addresses
    assert ab["time_to_throttle_ms"]["p50"] is not None and ab["abuser_errors"].get("rate_limited", 0) > 0
    assert ab["counters"].get("reports_sent", 0) >= 2 and ab["benign_chats_with_abuser"] > 0
    # What abusers provoked is theirs: no violation, no server error, no lost socket counted as the backend's.
    assert r["correctness"]["violations_total"] == 0, r["correctness"]["examples"]
    assert r["errors"]["total"] == 0, r["errors"]
    assert ab["benign_pair_latency_ms"]["count"] > 0


def test_patience_is_taken_from_the_real_time_plan_as_is() -> None:
    """The row already comes from plan_to_real (patience / K): dividing again made visitors
    give up K times too early (found by the live-versus-simulator test)."""
    assert _visit("impatient", k=10.0).patience_s() == pytest.approx(60.0)
