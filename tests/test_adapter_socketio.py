"""The Socket.IO adapter end to end: real swarms through `chatload run --protocol socketio
--mapping examples/mappings/socketio-clone.toml` (python-socketio's sync client under
gevent, inside Locust workers) against a python-socketio AsyncServer clone with its own
event names (tests/clone_servers/socketio_server.py), plus the mapping's validation.

A correct clone gives zero violations and the report names only what it lacks; a clone
that also lacks typing and partner notifications, declared in the mapping, gives zero
violations too (never a false one) and more unchecked checks; the shared matcher's faults
are flagged through the adapter.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import harness.adapters as adapters
from harness.adapters.socketio import emit_args, incoming
from tests.clone_servers.harness_run import MAPPINGS, against_clone
from tests.support import ROOT, time_unit

MAPPING = "socketio-clone.toml"
# chatload run probes its target with a WebSocket upgrade: Engine.IO's own URL accepts one.
# The adapter itself keeps only the host and port (the Socket.IO path is the mapping's).
EIO_PATH = "/socket.io/?EIO=4&transport=websocket"
FAST = ["message_rate_per_s=10", "chat_median_s=1.0", "chat_max_s=2.0"]


def _run(tmp: Path, server_args: list[str], users: int, params: list[str], mapping: str = MAPPING
         ) -> tuple[int, dict, str]:
    return against_clone("socketio_server", server_args, tmp, "socketio", mapping, users, params, ws_path=EIO_PATH)


def test_correct_clone_has_no_violations(tmp_path: Path) -> None:
    code, r, out = _run(tmp_path, [], 10, FAST + ["give_up_share=0.3", "patience_mean_s=0.3"])
    corr = r["correctness"]
    assert corr["violations_total"] == 0, json.dumps(corr)
    assert code == 0, out
    assert r["throughput"]["pairs"] > 5 and r["throughput"]["messages"] > 50, out
    assert r["oracle"]["checked"]["symmetric_pairs"] > 5
    unchecked = {u["check"] for u in corr["unchecked"]}
    assert unchecked == {"signal_rtt", "interests"}, corr["unchecked"]
    # Reasons are mapped, and the acknowledged `latency` event is an exact barrier.
    assert r["counters"].get("end_next", 0) > 0 and r["partner_left_latency_ms"]["count"] > 0
    assert {t["mode"] for t in r["tickets"]} == {"text"}


def test_clone_lacking_typing_and_partner_left_has_no_false_violations(tmp_path: Path) -> None:
    """--no-typing answers typing events with `oops` (an unexpected error if the harness sent
    one anyway); --silent never tells the partner. The mapping says so."""
    src = (MAPPINGS / MAPPING).read_text()
    text = "\n".join(ln for ln in src.splitlines() if "typing" not in ln and ln != "]") + "\n"
    text = text.replace("[capabilities]\n", "[capabilities]\npartner_left = false\n")
    assert "typing" not in text and "partner_left = false" in text
    mapping = tmp_path / "lacking.toml"
    mapping.write_text(text)
    spec = adapters.load("socketio", mapping)
    assert {"typing", "partner_left"} <= set(spec.capabilities.missing())

    # No give-ups: on a backend that never says "partner left", a pairing that crosses the
    # partner's give-up is indistinguishable from a ghost match for the oracle (its known limit).
    code, r, out = _run(tmp_path / "run", ["--silent", "--no-typing"], 8, FAST + ["give_up_share=0"],
                        mapping=str(mapping))
    corr = r["correctness"]
    assert corr["violations_total"] == 0, json.dumps(corr)
    assert code == 0, out
    assert r["throughput"]["pairs"] > 3 and r["throughput"]["messages"] > 20, out
    unchecked = {u["check"] for u in corr["unchecked"]}
    assert {"missing_partner_left", "wrong_partner_left_reason", "typing"} <= unchecked, corr["unchecked"]


FAULTS = [
    ("await_race", ["--delay-ms", "50"], 12, ["chat_median_s=0.5", "chat_max_s=2.0"], "double_match"),
    ("leak", ["--rate", "0.05"], 12, FAST, "cross_talk"),
    # Many short waits given up by disconnecting (with 8 users and 1 s chats a run sometimes
    # left too few ghosts, paired too late to be judged).
    ("ghost", [], 12, ["give_up_share=1.0", "give_up_disconnect_share=1.0", "patience_mean_s=0.2",
                       "chat_median_s=0.7"], "ghost_match"),
]


@pytest.mark.parametrize("fault, args, users, params, counter", FAULTS, ids=[f[0] for f in FAULTS])
def test_clone_faults_are_flagged(fault: str, args: list[str], users: int, params: list[str], counter: str,
                                  tmp_path: Path) -> None:
    code, r, out = _run(tmp_path, ["--fault", fault, *args], users, params)
    corr = r["correctness"]
    assert corr[counter] > 0, f"{fault}: {counter} not flagged: {json.dumps(corr)}\n{out}"
    assert code == 1, out


# -- the mapping (no server) ------------------------------------------------------------------
def _mapping(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "m.toml"
    path.write_text('protocol = "socketio"\n' + body)
    return path


RECV = """
[recv]
paired = { match = { event = "matched" } }
message = { match = { event = "msg" }, text = "data" }
"""


def test_example_mapping_capabilities() -> None:
    spec = adapters.load("socketio", MAPPINGS / MAPPING)
    assert spec.capabilities.missing() == ["interests", "lang", "video", "report"]
    assert spec.capabilities.barrier and spec.config["ping_ack"]
    assert spec.config["path"] == "socket.io" and spec.config["transports"] == ["websocket"]


def test_ping_without_ack_or_pong_is_no_barrier(tmp_path: Path) -> None:
    m = _mapping(tmp_path, '[send]\njoin = { event = "find" }\nmessage = { event = "msg", data = "$text" }\n'
                           'ping = { event = "latency", data = "$t" }\n' + RECV)
    assert not adapters.load("socketio", m).capabilities.barrier


@pytest.mark.parametrize("send, complaint", [
    ('join = { type = "find" }', "string `event`"),
    ('join = { event = "find", payload = 1 }', "unknown keys"),
    ('join = { event = "find", data = 1, args = [1] }', "both data and args"),
    ('join = { event = "find", ack = true }', "only meaningful on ping"),
])
def test_bad_templates_are_usage_errors(tmp_path: Path, send: str, complaint: str) -> None:
    m = _mapping(tmp_path, f'[send]\n{send}\nmessage = {{ event = "msg", data = "$text" }}\n' + RECV)
    with pytest.raises(adapters.MappingError, match=complaint):
        adapters.load("socketio", m)


def test_event_shapes() -> None:
    assert incoming("matched", ({"room": "r1"},)) == {"event": "matched", "data": {"room": "r1"},
                                                      "args": [{"room": "r1"}]}
    assert incoming("searching", ())["data"] is None
    assert incoming("two", (1, "b"))["data"] == [1, "b"]
    assert emit_args({"event": "e", "args": [1, 2]}) == (1, 2)
    assert emit_args({"event": "e", "data": [1, 2]}) == [1, 2]  # one list argument
    assert emit_args({"event": "e"}) is None


def test_missing_client_library_is_a_usage_error() -> None:
    """Without python-socketio installed, choosing socketio says what to install."""
    code = ("import sys; sys.modules['socketio'] = None\n"
            "import harness.adapters as a\n"
            "try:\n    a.load('socketio', sys.argv[1])\n"
            "except a.MappingError as e:\n    print(e); sys.exit(3)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(MAPPINGS / MAPPING)], cwd=ROOT, capture_output=True,
                          text=True, timeout=30 * time_unit())
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "python-socketio[client]" in proc.stdout
