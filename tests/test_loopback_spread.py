"""Loopback spread (harness/loopback_spread.py), the swarm.* parameters and the pre-fill.

The spread is checked for real too: connections to two targets on 127.0.0.1 (two ports of
one listener process) each get their own ephemeral port space, and reach their target.
"""
from __future__ import annotations

import json
import socket

import numpy as np
import pytest

from harness import swarm_params
from harness.loopback_spread import PORTS_PER_TARGET, Spread, SpreadError, Target, capacity, parse, rewrite
from harness.population import ParamError, PopulationModel
from harness.population.timescale import plan_to_real
from harness.prefill import concat, prefill_rows, with_prefill


def test_parse_ranges_of_addresses_and_ports() -> None:
    assert parse("127.0.0.1-3") == [Target("127.0.0.1"), Target("127.0.0.2"), Target("127.0.0.3")]
    assert parse("127.0.0.1:8080-8081, 127.0.0.9") == [Target("127.0.0.1", 8080), Target("127.0.0.1", 8081),
                                                        Target("127.0.0.9")]
    assert parse("") == [] and capacity(parse("127.0.0.1-4")) == 4 * PORTS_PER_TARGET


@pytest.mark.parametrize("spec", ["10.0.0.1", "192.168.1.1-2", "127.0.0.5-2", "127.0.0.1:0", "127.0.0.1:99999",
                                  "127.0.1", "localhost", "127.0.0.1,127.0.0.1", "127.0.0.x"])
def test_bad_or_non_loopback_specs_are_refused(spec: str) -> None:
    with pytest.raises(SpreadError):
        parse(spec)


def test_round_robin_rewrites_host_and_port_only() -> None:
    spread = Spread("127.0.0.1-2:9000")
    urls = [spread.url("ws://127.0.0.1:8080/ws?x=1") for _ in range(4)]
    assert urls == ["ws://127.0.0.1:9000/ws?x=1", "ws://127.0.0.2:9000/ws?x=1"] * 2
    assert Spread("").url("ws://127.0.0.1:8080/ws") == "ws://127.0.0.1:8080/ws"
    assert rewrite("ws://127.0.0.1:8080/ws", Target("127.0.0.3")) == "ws://127.0.0.3:8080/ws"


def test_spread_connections_reach_every_target_with_their_own_ports() -> None:
    listeners = []
    for _ in range(2):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        listeners.append(s)
    ports = [s.getsockname()[1] for s in listeners]
    spread = Spread(",".join(f"127.0.0.1:{p}" for p in ports))
    clients = []
    try:
        for _ in range(10):
            url = spread.url("ws://127.0.0.1:1/ws")
            host, port = url.split("//")[1].split("/")[0].split(":")
            clients.append(socket.create_connection((host, int(port)), timeout=5))
        by_target: dict[int, int] = {}
        for c in clients:
            by_target[c.getpeername()[1]] = by_target.get(c.getpeername()[1], 0) + 1
        assert by_target == {ports[0]: 5, ports[1]: 5}
        for s in listeners:
            for _ in range(5):
                conn, _ = s.accept()
                conn.close()
    finally:
        for c in clients + listeners:
            c.close()


def test_swarm_params_split_from_the_rest_and_checked() -> None:
    rest, opts = swarm_params.split({"dau": 5, "swarm.prefill": 100, "swarm": {"idle": True, "targets": "127.0.0.1-2"}})
    assert rest == {"dau": 5}
    assert opts.prefill == 100 and opts.idle is True and opts.targets == "127.0.0.1-2"
    assert swarm_params.SwarmOptions().prefill == -1  # the scenario's own figure
    for bad, word in [({"swarm.prefil": 1}, "prefil"), ({"swarm.idle": "yes"}, "idle"),
                      ({"swarm.prefill": 1.5}, "prefill"), ({"swarm.targets": "10.0.0.1"}, "targets"),
                      ({"swarm.prefill_ramp_s": 0}, "prefill_ramp_s")]:
        with pytest.raises(ParamError, match=word):
            swarm_params.split(bad)


def test_take_from_env_removes_swarm_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATLOAD_SCENARIO_PARAMS", json.dumps({"dau": 7, "swarm.prefill": 3}))
    opts = swarm_params.take_from_env({"swarm.prefill_ramp_s": 9.0})
    assert opts.prefill == 3 and opts.prefill_ramp_s == 9.0
    import os
    assert json.loads(os.environ["CHATLOAD_SCENARIO_PARAMS"]) == {"dau": 7}


def test_prefill_adds_visits_over_the_ramp_and_keeps_the_window() -> None:
    model = PopulationModel(dau=300_000)
    window = plan_to_real(model.build(seed=3, start_hour=1.5, hours=0.1), 2.0)
    both = with_prefill(window, model, 500, seed=3, start_s=5.0, ramp_s=10.0)
    assert both.n == window.n + 500
    assert np.all(np.diff(both.arrival_s) >= 0)
    extra = both.arrival_s[(both.arrival_s >= 5.0) & (both.arrival_s < 15.0)]
    assert extra.shape[0] >= 500  # the ramp holds the pre-fill (and the window's own arrivals)
    # The window's own visits are all still there, with their interests (CSR rebuilt right).
    key = lambda p, i: (round(float(p.arrival_s[i]), 9), int(p.chats[i]), tuple(p.interests_of(i)))  # noqa: E731
    mine = {key(both, i) for i in range(both.n)}
    assert all(key(window, i) in mine for i in range(window.n))
    pre = prefill_rows(model, 500, seed=3, start_hour=1.5, time_scale=2.0, start_s=5.0, ramp_s=10.0)
    assert pre.time_scale == 2.0  # patience is on the run's clock like the window's


def test_prefill_works_with_almost_no_daily_users() -> None:
    model = PopulationModel(dau=1)
    pre = prefill_rows(model, 2000, seed=1, start_hour=0.0, time_scale=1.0, start_s=0.0, ramp_s=4.0)
    assert pre.n == 2000 and pre.arrival_s[0] > 0 and pre.arrival_s[-1] < 4.0
    joined = concat(pre, pre)
    assert joined.n == 4000 and joined.interests_of(2000 + 7) == pre.interests_of(7)
