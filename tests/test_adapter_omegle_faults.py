"""The oracle through the omegle adapter against a faulty Omegle-style clone
(tests/clone_servers/omegle_faulty.py: the Omegle long-poll API on the shared matcher).

The reference server's front door is correct, so the faults come from this clone: a
double match (await between choosing and recording a partner), cross-talk (messages
leaked to another chat) and a ghost match (disconnected sessions kept in the queue) must
each be flagged, and the same clone without a fault must give none.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.clone_servers.harness_run import against_clone

# Topics are ignored by this clone; text only (Omegle has no video in the adapter).
BASE = ["interest_share=0", "message_rate_per_s=5"]
FAST = ["chat_median_s=1.0", "chat_max_s=2.0"]


def _run(tmp: Path, server_args: list[str], users: int, params: list[str]) -> tuple[int, dict, str]:
    # /ws on the clone only answers chatload run's pre-flight WebSocket probe; the adapter
    # uses the host and port.
    return against_clone("omegle_faulty", server_args, tmp, "omegle", None, users, BASE + params, ws_path="/ws")


def test_clone_without_fault_has_no_violations(tmp_path: Path) -> None:
    code, r, out = _run(tmp_path, [], 10, FAST + ["give_up_share=0.3", "patience_mean_s=0.3"])
    corr = r["correctness"]
    assert corr["violations_total"] == 0, json.dumps(corr) + out[-2000:]
    assert code == 0, out
    assert r["throughput"]["pairs"] > 5 and r["throughput"]["messages"] > 20, out[-2000:]
    assert r["oracle"]["checked"]["symmetric_pairs"] > 5


FAULTS = [
    ("await_race", ["--delay-ms", "50"], 12, ["chat_median_s=0.5", "chat_max_s=2.0"], "double_match"),
    ("leak", ["--rate", "0.1"], 12, FAST, "cross_talk"),
    # Many short waits given up by disconnecting (with 8 users and 1 s chats a run sometimes
    # left too few ghosts, paired too late to be judged).
    ("ghost", [], 12, ["give_up_share=1.0", "give_up_disconnect_share=1.0", "patience_mean_s=0.2",
                       "chat_median_s=0.7"], "ghost_match"),
]


@pytest.mark.parametrize("fault, args, users, params, counter", FAULTS, ids=[f[0] for f in FAULTS])
def test_faults_are_flagged_through_the_omegle_adapter(fault: str, args: list[str], users: int,
                                                       params: list[str], counter: str, tmp_path: Path) -> None:
    code, r, out = _run(tmp_path, ["--fault", fault, *args], users, params)
    corr = r["correctness"]
    assert corr[counter] > 0, f"{fault}: {counter} not flagged: {json.dumps(corr)}\n{out[-3000:]}"
    assert code == 1, out
