"""The reference server's Omegle-style front door, and the omegle adapter through it.

The front door speaks real HTTP long polling on the same hub and core as /ws, so an
Omegle-style user and a WebSocket user are paired with each other. The adapter test is a
real swarm (`chatload run --protocol omegle` against the embedded reference server): no
violations, and the report names what an Omegle backend cannot tell (reasons, pair ids).
"""
from __future__ import annotations

import json
import urllib.parse
import urllib.request
from pathlib import Path

from harness import wsclient
from tests.clone_servers.harness_run import chatload_run
from tests.support import reference_server, time_unit


def _post(base: str, path: str, query: str = "", **form: str) -> str:
    data = urllib.parse.urlencode(form).encode()
    url = base + path + (f"?{query}" if query else "")
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=20 * time_unit()) as resp:
        return resp.read().decode()


def test_omegle_user_and_websocket_user_chat_with_each_other() -> None:
    with reference_server() as (base, _proc):
        ws = wsclient.connect(base.replace("http://", "ws://") + "/ws", timeout=5 * time_unit())
        assert ws.recv()["type"] == "welcome"
        ws.send_json({"type": "join", "mode": "text", "interests": ["chess"], "lang": "de"})
        assert ws.recv()["type"] == "waiting"
        q = urllib.parse.urlencode({"topics": json.dumps(["chess", "go"]), "lang": "de", "firstevents": "1"})
        start = json.loads(_post(base, "/start", q))
        cid = start["clientID"]
        assert start["events"] == [["commonLikes", ["chess"]], ["connected"]]
        paired = ws.recv()
        assert paired["type"] == "paired" and paired["common"] == ["chess"]
        assert _post(base, "/send", id=cid, msg="hallo") == "win"
        assert ws.recv() == {"type": "message", "text": "hallo"}
        ws.send_json({"type": "typing", "active": True})
        ws.send_json({"type": "message", "text": "servus"})
        assert json.loads(_post(base, "/events", id=cid)) == [["typing"], ["gotMessage", "servus"]]
        assert _post(base, "/disconnect", id=cid) == "win"
        assert ws.recv() == {"type": "partner_left", "reason": "disconnect"}
        assert json.loads(_post(base, "/events", id=cid)) is None  # the id is dead
        assert _post(base, "/send", id=cid, msg="late") == "fail"
        ws.close()


def test_stranger_disconnected_ends_the_omegle_session() -> None:
    with reference_server() as (base, _proc):
        a = json.loads(_post(base, "/start", "firstevents=1"))
        b = json.loads(_post(base, "/start", "firstevents=1"))
        assert a["events"] == [["waiting"]] and b["events"] == [["connected"]]
        assert json.loads(_post(base, "/events", id=a["clientID"])) == [["connected"]]
        assert _post(base, "/disconnect", id=b["clientID"]) == "win"
        assert json.loads(_post(base, "/events", id=a["clientID"])) == [["strangerDisconnected"]]
        assert json.loads(_post(base, "/events", id=a["clientID"])) is None
        assert _post(base, "/send", id=a["clientID"], msg="x") == "fail"


def test_swarm_through_the_omegle_adapter_has_no_violations(tmp_path: Path) -> None:
    params = ["message_rate_per_s=5", "chat_median_s=1.0", "chat_max_s=2.0", "give_up_share=0.3",
              "patience_mean_s=0.3", "interest_share=0.3"]
    code, r, out = chatload_run(None, tmp_path, "omegle", None, 10, params)
    corr = r["correctness"]
    assert corr["violations_total"] == 0, json.dumps(corr) + out[-3000:]
    assert r["throughput"]["pairs"] > 5 and r["throughput"]["messages"] > 20, out[-3000:]
    assert r["oracle"]["checked"]["symmetric_pairs"] > 5
    assert r["counters"].get("end_next", 0) > 0  # next emulated as /disconnect + /start
    assert any(t["interests"] for t in r["tickets"])
    unchecked = {u["check"] for u in corr["unchecked"]}
    assert "wrong_partner_left_reason" in unchecked and "signal_rtt" in unchecked
    assert "after_end_delivery" not in unchecked  # the /disconnect barrier is exact
    assert code == 0, out
