"""Every bundled scenario runs in a short smoke mode against the reference server.

Each run is a real Locust process (local runner, the plugin's both roles) against the
reference server started as a subprocess with the scenario's server flags
(`ScenarioConfig.server_args()`: interest fallback / K, rate limits x K, X-Forwarded-For
trusted for the abuse scenario), for a few seconds with 30 slots. The smoke overrides
shrink the population so a few seconds hold whole visits: K = 10, one language, short
visits. Checks: exit 0, the results sections, no oracle violation, no backend or harness
error, open-model arrivals on schedule, and what makes each scenario what it is.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.scenario_config import load
from tests.support import reference_server
from tests.swarm_support import run_swarm
from tests.test_scenarios_config import ALL_SCENARIOS

RUN_S = 4
SLOTS = 30
#: 1 arrival per model second at K = 10: 10 visits a second; short visits, one language.
SMOKE: dict[str, Any] = {
    "dau": 86_400, "time_scale": 10, "lang_mix": {"en": 1.0}, "tail_share": 0.0,
    "chats_mean": {"skipper": 3, "talker": 2, "keeper": 2, "impatient": 2, "abuser": 3},
}
EXTRA: dict[str, dict[str, Any]] = {
    "smoke": {},  # the closed-loop smoke scenario keeps its own parameters (tests/test_e2e_swarm.py)
    "flash_crowd": {"dau": 43_200, "burst_start_s": 15.0, "burst_ramp_s": 5.0, "burst_hold_s": 60.0},
    "interests": {"interest_vocab": 50},  # a small vocabulary, so a few seconds see common interests
    "abuse": {"abuse_share": 0.3},
}


def params_for(name: str) -> dict[str, Any]:
    return {} if name == "smoke" else {**SMOKE, **EXTRA.get(name, {})}


@pytest.mark.parametrize("name", ALL_SCENARIOS)
def test_scenario_smoke_run(name: str, tmp_path: Path) -> None:
    params = params_for(name)
    server_args = [] if name == "smoke" else load(name, overrides=params).server_args()
    with reference_server(*server_args) as (base, _server):
        run = run_swarm(name, base.replace("http://", "ws://") + "/ws", tmp_path, params, RUN_S, SLOTS, workers=0)
    r = run["results"]
    assert r is not None and run["rc"] == 0, run["logs"]
    for key in ("run", "pair_latency_ms", "relay_latency_ms", "throughput", "users", "correctness", "errors",
                "histograms", "timeline", "tickets", "arrivals", "abuse", "processes"):
        assert key in r, key
    assert r["partial"] is False
    assert r["correctness"]["violations_total"] == 0, r["correctness"]["examples"]
    bad = {k: v for k, v in r["errors"].items() if k.startswith(("server_error", "harness_error", "unexpected"))}
    assert not bad, (bad, run["logs"])
    assert r["throughput"]["pairs"] > 0
    assert any("rss_mb" in p for p in r["timeline"]) and r["processes"]
    a = r["arrivals"]
    if name == "smoke":
        assert a["model"] == "closed" and a["scheduled"] == 0
        return
    assert a["model"] == "open" and a["scheduled"] > 0
    assert a["started"] + a["dropped_arrivals"] + a["pending_at_end"] == a["scheduled"]
    assert a["lateness_ms"]["count"] == a["started"] > 0
    check = CHECKS.get(name)
    if check:
        check(r)


def _video(r: dict) -> None:
    assert r["signal_rtt_ms"]["count"] > 0
    assert {t["mode"] for t in r["tickets"]} == {"video"}


def _interests(r: dict) -> None:
    with_interests = [t for t in r["tickets"] if t["interests"]]
    assert len(with_interests) > 0.3 * len(r["tickets"])


def _skip_storm(r: dict) -> None:
    assert r["counters"].get("end_next", 0) > r["counters"].get("messages_sent", 0) / 2


def _abuse(r: dict) -> None:
    ab = r["abuse"]
    assert ab["abuser_visits"] > 0 and sum(ab["abusers"].values()) == ab["abuser_visits"]
    assert 0 < ab["benign_chats_with_abuser"] <= ab["benign_chats"]


def _flash_crowd(r: dict) -> None:
    # K = 10: the burst starts 1.5 s in and reaches 10x within 0.5 s.
    per = {p["t"]: p["scheduled"] for p in r["arrivals"]["per_second"]}
    calm = per.get(1, 0) + per.get(0, 0)
    crowd = per.get(2, 0) + per.get(3, 0)
    assert crowd >= 3 * max(calm, 1), per


CHECKS = {"video": _video, "interests": _interests, "skip_storm": _skip_storm, "abuse": _abuse,
          "flash_crowd": _flash_crowd}
