"""The reference server speaks protocol 1: every frame type, every error, over real sockets.

One server subprocess for the module; every test uses its own `lang` so its users sit in a
pool nobody else joins. "Nothing else arrived" is proven with a ping barrier: the next frame
after a ping must be its pong.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import urllib.request
from typing import Any, Awaitable, Callable

import aiohttp
import pytest

from reference_server.client import ProtocolClient, connect, pair_up
from tests.support import reference_server, time_unit

U = time_unit()
T = 5 * U  # per-frame receive timeout
FALLBACK = 0.3
REMATCH_BLOCK = 1.5 * U  # every step of the no-rematch test must fit in it
_langs = (f"p{i:03d}" for i in itertools.count())


@pytest.fixture(scope="module")
def base() -> str:
    with reference_server(
        "--interest-fallback", str(FALLBACK), "--rematch-block", str(REMATCH_BLOCK)
    ) as (url, _proc):
        yield url


def run(body: Callable[[aiohttp.ClientSession], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with aiohttp.ClientSession() as http:
            return await asyncio.wait_for(body(http), 30 * U)

    return asyncio.run(main())


async def barrier(c: ProtocolClient, tag: str = "b") -> None:
    """Assert nothing is pending for `c`: a ping's pong must be the very next frame."""
    await c.send("ping", t=tag)
    await c.expect("pong", T, t=tag)


async def refused(c: ProtocolClient, code: str, frame: dict | str) -> dict:
    if isinstance(frame, str):
        await c.send_raw(frame)
    else:
        await c.send_raw(json.dumps(frame))
    err = await c.expect("error", T, code=code)
    assert isinstance(err["message"], str) and err["message"]
    return err


# ---------------------------------------------------------------- welcome, join, pairing
def test_welcome_right_after_upgrade(base: str) -> None:
    async def body(http):
        a = await connect(http, base, expect_welcome=False)
        w = await a.recv(T)
        assert w["type"] == "welcome" and w["protocol"] == 1
        assert isinstance(w["session"], str) and w["session"]
        assert isinstance(w["online"], int) and w["online"] >= 1
        b = await connect(http, base)
        assert b.session != w["session"]
        assert b.welcome["online"] >= 2

    run(body)


def test_join_waits_then_pairs_with_same_pair_id_and_one_initiator(base: str) -> None:
    async def body(http):
        lang = next(_langs)
        a = await connect(http, base)
        await a.send("join", lang=lang)  # mode defaults to text
        w = await a.expect("waiting", T)
        assert isinstance(w["online"], int) and w["online"] >= 1
        b = await connect(http, base)
        await b.send("join", mode="text", lang=lang, interests=[])
        pb = await b.expect("paired", T)
        pa = await a.expect("paired", T)
        assert pa["pair"] == pb["pair"] and isinstance(pa["pair"], str)
        assert pa["mode"] == pb["mode"] == "text"
        assert pa["common"] == pb["common"] == []
        assert sorted([pa["initiator"], pb["initiator"]]) == [False, True]

    run(body)


def test_video_pair_and_common_interests_are_trimmed_and_lowercased(base: str) -> None:
    async def body(http):
        lang = next(_langs)
        a = await connect(http, base)
        await a.send("join", mode="video", lang=lang, interests=["  Music ", "Cats"])
        await a.expect("waiting", T)
        b = await connect(http, base)
        await b.send("join", mode="video", lang=lang, interests=["dogs", "MUSIC"])
        pb = await b.expect("paired", T, mode="video")
        pa = await a.expect("paired", T, mode="video")
        assert pa["common"] == pb["common"] == ["music"]
        assert pa["initiator"] != pb["initiator"]

    run(body)


def test_modes_and_langs_do_not_mix(base: str) -> None:
    async def body(http):
        lang, other = next(_langs), next(_langs)
        a = await connect(http, base)
        await a.send("join", mode="text", lang=lang)
        await a.expect("waiting", T)
        b = await connect(http, base)
        await b.send("join", mode="video", lang=lang)
        await b.expect("waiting", T)
        c = await connect(http, base)
        await c.send("join", mode="text", lang=other)
        await c.expect("waiting", T)
        for x in (a, b, c):
            await barrier(x)

    run(body)


# ---------------------------------------------------------------- relay
def test_message_typing_relay_in_order_only_to_the_partner(base: str) -> None:
    async def body(http):
        a, b, _, _ = await pair_up(http, base, next(_langs))
        c, d, _, _ = await pair_up(http, base, next(_langs))  # bystanders
        texts = [f"m{i} é ✓" for i in range(30)]
        for t in texts:
            await a.send("message", text=t)
        await a.send("typing", active=True)
        await a.send("typing", active=False)
        for t in texts:
            assert (await b.expect("message", T))["text"] == t
        assert (await b.expect("typing", T))["active"] is True
        assert (await b.expect("typing", T))["active"] is False
        await b.send("message", text="back")
        await a.expect("message", T, text="back")
        for x in (a, b, c, d):
            await barrier(x)

    run(body)


def test_signal_relayed_in_video_and_size_limit(base: str) -> None:
    async def body(http):
        a, b, _, _ = await pair_up(http, base, next(_langs), mode="video")
        offer = {"sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1", "type": "offer", "n": [1, 2.5, None]}
        await a.send("signal", data=offer)
        assert (await b.expect("signal", T))["data"] == offer
        # exactly 4096 bytes encoded is accepted; 4097 is not
        exact = {"x": "a" * (4096 - len('{"x":""}'))}
        assert len(json.dumps(exact, separators=(",", ":"))) == 4096
        await a.send("signal", data=exact)
        assert (await b.expect("signal", T))["data"] == exact
        await refused(a, "bad_field", {"type": "signal", "data": {"x": "a" * 4089}})
        await refused(a, "bad_field", {"type": "signal", "data": "not an object"})
        await refused(a, "bad_field", {"type": "signal", "data": [1]})
        await refused(a, "bad_field", {"type": "signal"})
        await barrier(b)

    run(body)


def test_signal_not_allowed_in_text_chat(base: str) -> None:
    async def body(http):
        a, b, _, _ = await pair_up(http, base, next(_langs), mode="text")
        await refused(a, "not_allowed", {"type": "signal", "data": {"candidate": "x"}})
        await barrier(b)
        await a.send("message", text="still paired")
        await b.expect("message", T, text="still paired")

    run(body)


def test_ping_pong_in_every_state(base: str) -> None:
    async def body(http):
        lang = next(_langs)
        a = await connect(http, base)
        for t in (1, "x", {"k": [1, None]}, None, 1.5):
            await a.send("ping", t=t)
            assert (await a.expect("pong", T))["t"] == t
        await a.send_raw('{"type":"ping"}')
        assert (await a.expect("pong", T))["t"] is None
        await a.send("join", lang=lang)
        await a.expect("waiting", T)
        await barrier(a, "waiting")
        b = await connect(http, base)
        await b.send("join", lang=lang)
        await b.expect("paired", T)
        await a.expect("paired", T)
        await barrier(a, "paired")

    run(body)


# ---------------------------------------------------------------- next, leave, disconnect, report
def test_next_tells_partner_and_requeues(base: str) -> None:
    async def body(http):
        lang = next(_langs)
        a, b, _, _ = await pair_up(http, base, lang)
        await a.send("next")
        await b.expect("partner_left", T, reason="next")
        w = await a.expect("waiting", T)  # b is idle, so nobody to pair with
        assert w["online"] >= 2
        # b is idle now: chat frames are refused
        await refused(b, "not_allowed", {"type": "message", "text": "late"})
        c = await connect(http, base)
        await c.send("join", lang=lang)
        pc = await c.expect("paired", T)
        pa = await a.expect("paired", T)
        assert pa["pair"] == pc["pair"]

    run(body)


def test_next_while_waiting_keeps_waiting(base: str) -> None:
    async def body(http):
        lang = next(_langs)
        a = await connect(http, base)
        await a.send("join", lang=lang)
        await a.expect("waiting", T)
        await a.send("next")
        await a.expect("waiting", T)
        b = await connect(http, base)
        await b.send("join", lang=lang)
        await b.expect("paired", T)
        await a.expect("paired", T)

    run(body)


def test_leave_paired_and_waiting(base: str) -> None:
    async def body(http):
        lang = next(_langs)
        a, b, _, _ = await pair_up(http, base, lang)
        await a.send("leave")
        await b.expect("partner_left", T, reason="leave")
        await barrier(a)  # no answer to leave
        await refused(a, "not_allowed", {"type": "message", "text": "x"})
        # a waiting user who leaves is out of the queue: a newcomer is not paired with it
        await a.send("join", lang=lang)
        await a.expect("waiting", T)
        await a.send("leave")
        await barrier(a)
        c = await connect(http, base)
        await c.send("join", lang=lang)
        await c.expect("waiting", T)
        await b.send("join", lang=lang)
        await b.expect("paired", T)
        await c.expect("paired", T)
        await barrier(a)

    run(body)


def test_disconnect_tells_partner_and_leaves_queue(base: str) -> None:
    async def body(http):
        lang = next(_langs)
        a, b, _, _ = await pair_up(http, base, lang)
        await a.close()
        await b.expect("partner_left", T, reason="disconnect")
        w = await connect(http, base)
        await w.send("join", lang=lang)
        await w.expect("waiting", T)
        await w.close()
        # the closed waiting user is gone: b waits instead of pairing with it
        await b.send("join", lang=lang)
        await b.expect("waiting", T)
        await barrier(b)

    run(body)


def test_report_ends_chat_and_leaves_reporter_idle(base: str) -> None:
    async def body(http):
        a, b, _, _ = await pair_up(http, base, next(_langs))
        await a.send("report", reason="spam")
        await b.expect("partner_left", T, reason="report")
        await barrier(a)
        await refused(a, "not_allowed", {"type": "next"})
        # reason may be omitted, and may be up to 200 characters
        c, d, _, _ = await pair_up(http, base, next(_langs))
        await c.send("report")
        await d.expect("partner_left", T, reason="report")
        e, f, _, _ = await pair_up(http, base, next(_langs))
        await e.send("report", reason="r" * 200)
        await f.expect("partner_left", T, reason="report")

    run(body)


# ---------------------------------------------------------------- errors
def test_bad_json_and_binary_frames(base: str) -> None:
    async def body(http):
        a = await connect(http, base)
        await refused(a, "bad_json", "not json")
        await refused(a, "bad_json", "[1, 2]")
        await refused(a, "bad_json", '"join"')
        await refused(a, "bad_json", '{"type": "join"')
        await refused(a, "bad_json", "{\"type\": NaN}")
        await a.send_bytes(b'{"type":"ping","t":1}')
        await a.expect("error", T, code="bad_json")
        await barrier(a)  # the socket stays open and nothing else changed

    run(body)


def test_bad_type(base: str) -> None:
    async def body(http):
        a = await connect(http, base)
        for frame in ({"type": "dance"}, {"text": "no type"}, {"type": 5}, {"type": None}, {"type": "JOIN"},
                      {"type": "welcome"}):
            await refused(a, "bad_type", frame)
        await barrier(a)

    run(body)


BAD_JOINS = [
    {"mode": "audio"},
    {"mode": 5},
    {"mode": None},
    {"interests": "music"},
    {"interests": [f"i{n}" for n in range(11)]},
    {"interests": ["   "]},
    {"interests": [""]},
    {"interests": ["x" * 33]},
    {"interests": [" " + "x" * 33 + " "]},
    {"interests": [5]},
    {"interests": [["nested"]]},
    {"lang": "e"},
    {"lang": "abcdefghi"},
    {"lang": 5},
    {"lang": ""},
]


def test_join_field_rules(base: str) -> None:
    async def body(http):
        lang = next(_langs)
        a = await connect(http, base)
        for fields in BAD_JOINS:
            await refused(a, "bad_field", {"type": "join", "lang": lang, **fields})
        # the refused joins changed nothing: a is idle and can still join; boundaries are accepted
        await a.send("join", lang="abcdefgh", interests=[f"{n:02d}" + "x" * 30 for n in range(10)])
        await a.expect("waiting", T)
        await a.send("leave")
        await a.send("join", lang=lang, interests=["  ok  "])
        await a.expect("waiting", T)

    run(body)


def test_chat_field_rules(base: str) -> None:
    async def body(http):
        a, b, _, _ = await pair_up(http, base, next(_langs))
        for frame in (
            {"type": "message", "text": ""},
            {"type": "message", "text": "x" * 2001},
            {"type": "message", "text": 5},
            {"type": "message"},
            {"type": "typing", "active": "yes"},
            {"type": "typing", "active": 1},
            {"type": "typing"},
            {"type": "report", "reason": "r" * 201},
            {"type": "report", "reason": 5},
        ):
            await refused(a, "bad_field", frame)
        await barrier(b)  # nothing was relayed
        await a.send("message", text="x" * 2000)
        assert (await b.expect("message", T))["text"] == "x" * 2000
        await a.send("message", text="é" * 2000)  # characters, not bytes
        assert (await b.expect("message", T))["text"] == "é" * 2000

    run(body)


def test_not_allowed_in_each_state(base: str) -> None:
    async def body(http):
        lang = next(_langs)
        a = await connect(http, base)
        # idle
        for frame in ({"type": "message", "text": "x"}, {"type": "typing", "active": True},
                      {"type": "signal", "data": {}}, {"type": "next"}, {"type": "leave"},
                      {"type": "report", "reason": "x"}):
            await refused(a, "not_allowed", frame)
        await a.send("join", mode="video", lang=lang)
        await a.expect("waiting", T)
        # waiting
        for frame in ({"type": "join", "lang": lang}, {"type": "message", "text": "x"},
                      {"type": "typing", "active": True}, {"type": "signal", "data": {}},
                      {"type": "report", "reason": "x"}):
            await refused(a, "not_allowed", frame)
        b = await connect(http, base)
        await b.send("join", mode="video", lang=lang)
        await b.expect("paired", T)
        await a.expect("paired", T)
        # paired
        await refused(a, "not_allowed", {"type": "join", "lang": lang})
        await barrier(b)

    run(body)


def test_refused_frames_change_no_state(base: str) -> None:
    async def body(http):
        lang = next(_langs)
        a = await connect(http, base)
        await a.send("join", lang=lang)
        await a.expect("waiting", T)
        await refused(a, "not_allowed", {"type": "join", "lang": next(_langs)})
        await refused(a, "bad_json", "{")
        await refused(a, "bad_type", {"type": "nope"})
        # still waiting in the same pool: a newcomer there is paired with it
        b = await connect(http, base)
        await b.send("join", lang=lang)
        pb = await b.expect("paired", T)
        pa = await a.expect("paired", T)
        assert pa["pair"] == pb["pair"]
        # paired: refused frames keep the chat going
        await refused(b, "not_allowed", {"type": "join"})
        await refused(b, "bad_field", {"type": "message", "text": ""})
        await b.send("message", text="still here")
        await a.expect("message", T, text="still here")

    run(body)


# ---------------------------------------------------------------- queue timers
def test_interest_fallback_pairs_two_waiting_users_without_new_arrival(base: str) -> None:
    async def body(http):
        lang = next(_langs)
        a = await connect(http, base)
        await a.send("join", lang=lang, interests=["chess"])
        await a.expect("waiting", T)
        b = await connect(http, base)
        await b.send("join", lang=lang, interests=["poker"])
        await b.expect("waiting", T)  # no shared interest: both wait
        pa = await a.expect("paired", FALLBACK + T)  # the fallback timer pairs them
        pb = await b.expect("paired", T)
        assert pa["pair"] == pb["pair"] and pa["common"] == pb["common"] == []

    run(body)


def test_no_rematch_right_after_next(base: str) -> None:
    async def body(http):
        lang = next(_langs)
        a, b, first, _ = await pair_up(http, base, lang)
        await a.send("next")
        await b.expect("partner_left", T, reason="next")
        await a.expect("waiting", T)
        await b.send("join", lang=lang)
        await b.expect("waiting", T)  # not paired again with a right away
        c = await connect(http, base)
        await c.send("join", lang=lang)
        pc = await c.expect("paired", T)
        # c takes the longest-waiting compatible user: a (waiting since its next)
        pa = await a.expect("paired", T)
        assert pa["pair"] == pc["pair"] != first["pair"]
        await barrier(b)

    run(body)


def test_rematch_allowed_after_block_when_only_two_wait(base: str) -> None:
    async def body(http):
        lang = next(_langs)
        a, b, first, _ = await pair_up(http, base, lang)
        await a.send("next")
        await b.expect("partner_left", T, reason="next")
        await a.expect("waiting", T)
        await b.send("join", lang=lang)
        await b.expect("waiting", T)
        pa = await a.expect("paired", REMATCH_BLOCK + T)  # the block expires: the timer pairs them
        pb = await b.expect("paired", T)
        assert pa["pair"] == pb["pair"] != first["pair"]

    run(body)


# ---------------------------------------------------------------- HTTP endpoints
def _get(url: str) -> tuple[int, bytes, str]:
    with urllib.request.urlopen(url, timeout=5 * U) as resp:
        return resp.status, resp.read(), resp.headers.get("Content-Type", "")


def test_healthz_counts_online_and_waiting(base: str) -> None:
    async def body(http):
        lang = next(_langs)
        before = json.loads((await asyncio.to_thread(_get, base + "/healthz"))[1])
        a = await connect(http, base)
        await a.send("join", lang=lang)
        await a.expect("waiting", T)
        status, raw, ctype = await asyncio.to_thread(_get, base + "/healthz")
        doc = json.loads(raw)
        assert status == 200 and ctype.startswith("application/json")
        assert doc["status"] == "ok"
        assert doc["online"] == before["online"] + 1
        assert doc["waiting"] == before["waiting"] + 1

    run(body)


METRIC_NAMES = [
    "chatload_server_connections",
    "chatload_server_connections_opened_total",
    "chatload_server_waiting_users",
    "chatload_server_pairs_total",
    "chatload_server_wait_seconds_bucket",
    "chatload_server_relayed_messages_total",
    "chatload_server_errors_total",
    "chatload_server_partner_left_total",
    "chatload_server_event_loop_lag_seconds_bucket",
    "chatload_server_handshake_timeouts_total",
    "chatload_server_draining",
]


def test_metrics_exposes_the_server_metrics(base: str) -> None:
    async def body(http):
        lang = next(_langs)
        a, b, _, _ = await pair_up(http, base, lang)
        await a.send("message", text="counted")
        await b.expect("message", T)
        await refused(a, "bad_type", {"type": "counted"})
        w = await connect(http, base)
        await w.send("join", lang=lang)
        await w.expect("waiting", T)
        status, raw, ctype = await asyncio.to_thread(_get, base + "/metrics")
        text = raw.decode()
        assert status == 200 and ctype.startswith("text/plain")
        for name in METRIC_NAMES:
            assert f"\n{name}" in text, name
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                values[key] = float(value)
        assert values['chatload_server_relayed_messages_total{type="message"}'] >= 1
        assert values['chatload_server_errors_total{code="bad_type"}'] >= 1
        assert values['chatload_server_pairs_total{mode="text"}'] >= 1
        assert values[f'chatload_server_waiting_users{{lang="{lang}",mode="text"}}'] == 1
        assert values["chatload_server_wait_seconds_count"] >= 2

    run(body)
