"""Pure tests of the reference server's sans-I/O pieces: protocol.py, ratelimit.py, bans.py,
settings.py and the metrics histogram. No sockets, no event loop."""
from __future__ import annotations

import argparse
import ast
import json
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings as hsettings, strategies as st

from reference_server import protocol as P
from reference_server.bans import BanBook
from reference_server.metrics import Histogram, log_buckets
from reference_server.ratelimit import TokenBucket
from reference_server.settings import Settings, add_arguments, from_args

ROOT = Path(__file__).resolve().parent.parent


def code_of(raw: str | bytes, state: str = P.IDLE, mode: str | None = None) -> str:
    with pytest.raises(P.ProtocolError) as info:
        P.parse(raw, state, mode)
    assert info.value.code in P.ERROR_CODES and info.value.message
    return info.value.code


def frame(**fields) -> str:
    return json.dumps(fields)


# ---------------------------------------------------------------- parse: order of checks
def test_bad_json() -> None:
    for raw in ("", "nope", "[1]", "1", '"x"', "null", '{"type":"join"', "{'type': 'join'}", b"\xff\xfe"):
        assert code_of(raw) == "bad_json"


def test_bad_type() -> None:
    for obj in ({}, {"type": 1}, {"type": None}, {"type": "Join"}, {"type": "paired"}, {"type": ["join"]}):
        assert code_of(json.dumps(obj)) == "bad_type"


def test_state_is_checked_before_fields() -> None:
    # a malformed join while paired is not_allowed, not bad_field: the order is fixed
    assert code_of(frame(type="join", mode="nope"), P.PAIRED, "text") == "not_allowed"
    assert code_of(frame(type="message", text=""), P.IDLE) == "not_allowed"
    assert code_of(frame(type="message", text=""), P.PAIRED, "text") == "bad_field"


def test_allowed_table_matches_the_protocol() -> None:
    expected = {
        "join": {"idle"},
        "message": {"paired"},
        "typing": {"paired"},
        "signal": {"paired"},
        "next": {"waiting", "paired"},
        "leave": {"waiting", "paired"},
        "report": {"paired"},
        "ping": {"idle", "waiting", "paired"},
    }
    assert {k: set(v) for k, v in P.ALLOWED.items()} == expected
    for kind, states in expected.items():
        for state in P.STATES:
            mode = "video" if state == P.PAIRED else None
            assert P.allowed(kind, state, mode) == (state in states)
    assert not P.allowed("signal", P.PAIRED, "text")
    assert P.allowed("message", P.PAIRED, "text")


def test_state_table_markdown_is_drawn_from_the_table() -> None:
    table = P.state_table_markdown()
    lines = table.splitlines()
    assert lines[0] == "| type | idle | waiting | paired |"
    assert len(lines) == 2 + len(P.ALLOWED)
    assert "| `signal` | not_allowed | not_allowed | yes (video only) |" in lines
    assert "| `ping` | yes | yes | yes |" in lines
    assert table in (ROOT / "docs" / "protocol.md").read_text(), "docs/protocol.md lost the state table"


# ---------------------------------------------------------------- parse: join fields
def test_join_defaults() -> None:
    assert P.parse(frame(type="join"), P.IDLE) == P.Join("text", "en", ())


def test_join_normalizes_interests_and_lang() -> None:
    cmd = P.parse(frame(type="join", mode="video", lang=" PT-BR ", interests=[" Music", "music ", "CATS"]), P.IDLE)
    assert cmd == P.Join("video", "pt-br", ("music", "cats"))


@pytest.mark.parametrize(
    "fields",
    [
        {"mode": "audio"}, {"mode": 1}, {"mode": None}, {"mode": ["text"]},
        {"interests": "x"}, {"interests": None}, {"interests": {"a": 1}},
        {"interests": [str(i) for i in range(11)]}, {"interests": [""]}, {"interests": ["  "]},
        {"interests": ["x" * 33]}, {"interests": [1]}, {"interests": [None]},
        {"lang": "e"}, {"lang": " e "}, {"lang": "x" * 9}, {"lang": 12}, {"lang": None},
    ],
)
def test_join_bad_fields(fields: dict) -> None:
    assert code_of(frame(type="join", **fields)) == "bad_field"


def test_join_boundaries_accepted() -> None:
    interests = [f"{i}".rjust(32, "x") for i in range(10)]
    cmd = P.parse(frame(type="join", lang="x" * 8, interests=interests), P.IDLE)
    assert cmd.lang == "x" * 8 and len(cmd.interests) == 10
    assert P.parse(frame(type="join", lang="ab", interests=[" " + "y" * 32 + " "]), P.IDLE).interests == ("y" * 32,)


# ---------------------------------------------------------------- parse: chat fields
def test_message_length_in_characters() -> None:
    assert P.parse(frame(type="message", text="a"), P.PAIRED, "text") == P.Message("a")
    assert P.parse(frame(type="message", text="é" * 2000), P.PAIRED, "text").text == "é" * 2000
    for bad in ("", "x" * 2001, 5, None, ["x"]):
        assert code_of(frame(type="message", text=bad), P.PAIRED, "text") == "bad_field"
    assert code_of(frame(type="message"), P.PAIRED, "text") == "bad_field"


def test_typing_needs_a_bool() -> None:
    assert P.parse(frame(type="typing", active=False), P.PAIRED, "text") == P.Typing(False)
    for bad in (0, 1, "true", None):
        assert code_of(frame(type="typing", active=bad), P.PAIRED, "text") == "bad_field"


def test_signal_object_and_encoded_size() -> None:
    exact = {"x": "a" * (P.SIGNAL_MAX_BYTES - 8)}
    cmd = P.parse(frame(type="signal", data=exact), P.PAIRED, "video")
    assert len(cmd.encoded) == P.SIGNAL_MAX_BYTES and orjson.loads(cmd.encoded) == exact
    too_big = {"x": "a" * (P.SIGNAL_MAX_BYTES - 7)}
    assert code_of(frame(type="signal", data=too_big), P.PAIRED, "video") == "bad_field"
    for bad in ([], "sdp", 1, None):
        assert code_of(frame(type="signal", data=bad), P.PAIRED, "video") == "bad_field"
    assert code_of(frame(type="signal", data={}), P.PAIRED, "text") == "not_allowed"


def test_report_reason() -> None:
    assert P.parse(frame(type="report"), P.PAIRED, "text") == P.Report("")
    assert P.parse(frame(type="report", reason="r" * 200), P.PAIRED, "text").reason == "r" * 200
    for bad in ("r" * 201, 3, None, ["x"]):
        assert code_of(frame(type="report", reason=bad), P.PAIRED, "text") == "bad_field"


def test_next_leave_ping_ignore_extra_fields() -> None:
    assert isinstance(P.parse(frame(type="next", extra=1), P.WAITING), P.Next)
    assert isinstance(P.parse(frame(type="leave"), P.PAIRED, "text"), P.Leave)
    assert P.parse(frame(type="ping", t={"a": [1]}), P.IDLE) == P.Ping({"a": [1]})
    assert P.parse(frame(type="ping"), P.IDLE) == P.Ping(None)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@hsettings(max_examples=150, deadline=None)
@given(
    obj=st.dictionaries(
        st.sampled_from(["type", "mode", "lang", "interests", "text", "active", "data", "reason", "t", "x"]),
        json_values | st.sampled_from(list(P.ALLOWED)),
        max_size=5,
    ),
    state=st.sampled_from(P.STATES),
    mode=st.sampled_from(["text", "video"]),
)
def test_parse_only_ever_accepts_or_raises_protocol_error(obj: dict, state: str, mode: str) -> None:
    raw = json.dumps(obj)
    try:
        cmd = P.parse(raw, state, mode if state == P.PAIRED else None)
    except P.ProtocolError as exc:
        assert exc.code in ("bad_type", "not_allowed", "bad_field")
        return
    assert P.allowed(obj["type"], state, mode if state == P.PAIRED else None)
    assert type(cmd).__name__.lower() == obj["type"]


# ---------------------------------------------------------------- encoders
def test_server_frames_are_json_objects_with_the_documented_fields() -> None:
    def load(b: bytes) -> dict:
        return json.loads(b.decode())

    assert load(P.welcome("s1", 3)) == {"type": "welcome", "protocol": 1, "session": "s1", "online": 3}
    assert load(P.waiting(7)) == {"type": "waiting", "online": 7}
    assert load(P.paired("p1", "video", ("a",), True)) == {
        "type": "paired", "pair": "p1", "mode": "video", "common": ["a"], "initiator": True}
    assert load(P.message('quote " and \\ and é\n')) == {"type": "message", "text": 'quote " and \\ and é\n'}
    assert load(P.typing(True)) == {"type": "typing", "active": True}
    assert load(P.typing(False)) == {"type": "typing", "active": False}
    assert load(P.signal(orjson.dumps({"sdp": "x"}))) == {"type": "signal", "data": {"sdp": "x"}}
    assert load(P.partner_left("next")) == {"type": "partner_left", "reason": "next"}
    assert load(P.pong([1, None])) == {"type": "pong", "t": [1, None]}
    assert load(P.error("bad_json", "m")) == {"type": "error", "code": "bad_json", "message": "m"}


def test_protocol_module_does_no_io() -> None:
    tree = ast.parse((ROOT / "reference_server" / "protocol.py").read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not imported & {"asyncio", "socket", "aiohttp", "threading", "time"}


# ---------------------------------------------------------------- token bucket
def test_bucket_burst_then_refill_at_rate() -> None:
    b = TokenBucket(rate=8, burst=3, now=100.0)  # binary fractions keep the float sums exact
    assert [b.take(100.0) for _ in range(4)] == [True, True, True, False]
    assert not b.take(100.0625)  # half a token
    assert b.take(100.125)  # one token after 1/8 s
    assert not b.take(100.125)


def test_bucket_caps_at_burst_and_ignores_clock_going_back() -> None:
    b = TokenBucket(rate=64, burst=2, now=0.0)
    assert b.available(1000.0) == 2
    assert b.take(1000.0) and b.take(1000.0) and not b.take(1000.0)
    assert not b.take(999.0)  # time going backwards adds nothing
    assert b.take(1000.015625)


def test_bucket_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=0, burst=1, now=0)
    with pytest.raises(ValueError):
        TokenBucket(rate=1, burst=0, now=0)


@hsettings(max_examples=100, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=0.5), min_size=1, max_size=200))
def test_bucket_never_allows_more_than_burst_plus_rate_times_elapsed(gaps: list[float]) -> None:
    rate, burst = 5.0, 4
    b = TokenBucket(rate, burst, now=0.0)
    now, allowed = 0.0, 0
    for gap in gaps:
        now += gap
        allowed += b.take(now)
    assert allowed <= burst + rate * now + 1e-9


# ---------------------------------------------------------------- bans
def test_ban_needs_distinct_reporters_within_window() -> None:
    book = BanBook(threshold=2, window=10, duration=60)
    assert not book.report("a", "v", 0)
    assert not book.report("a", "v", 1)  # same reporter twice counts once
    assert not book.report("v", "v", 2)  # self-reports never count
    assert book.report("b", "v", 3)
    assert book.is_banned("v", 3) and book.is_banned("v", 62.9)
    assert not book.is_banned("v", 63)
    assert not book.is_banned("a", 3)


def test_reports_outside_the_window_expire() -> None:
    book = BanBook(threshold=2, window=10, duration=60)
    book.report("a", "v", 0)
    assert not book.report("b", "v", 11)  # a's report is older than the window
    assert book.report("c", "v", 12)


def test_threshold_zero_disables_bans_and_sweep_forgets() -> None:
    assert not BanBook(threshold=0, window=10, duration=60).report("a", "v", 0)
    book = BanBook(threshold=1, window=10, duration=5)
    book.report("x", "y", 0)
    assert book.report("a", "v", 0) and book.active_bans == 2
    book.sweep(100)
    assert book.active_bans == 0 and book._reports == {}


# ---------------------------------------------------------------- settings and metrics
def test_settings_cli_round_trip() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert from_args(parser.parse_args([])) == Settings()
    s = from_args(parser.parse_args(["--port", "9", "--rate-limit", "0", "--trust-forwarded-for",
                                     "--drain-timeout", "2.5", "--forwarded-header", "X-Real-IP"]))
    assert (s.port, s.rate_limit, s.trust_forwarded_for, s.drain_timeout, s.forwarded_header) == (
        9, 0.0, True, 2.5, "X-Real-IP")
    with pytest.raises(ValueError):
        Settings(max_frame_bytes=10)


def test_histogram_buckets() -> None:
    bounds = log_buckets(0.001, 1.0)
    assert bounds[0] == 0.001 and bounds[-1] >= 1.0
    assert all(b2 / b1 == pytest.approx(1.25, rel=1e-3) for b1, b2 in zip(bounds, bounds[1:]))
    h = Histogram(bounds)
    for v in (0.0005, 0.001, 0.5, 5.0):
        h.observe(v)
    cum = h.cumulative()
    assert cum[0] == ("0.001", 2)  # upper bounds are inclusive
    assert cum[-1] == ("+Inf", 4) and cum[-2][1] == 3
    assert h.count == 4 and h.total == pytest.approx(5.5015)


def test_docs_list_every_setting() -> None:
    import dataclasses

    server_doc = (ROOT / "docs" / "server.md").read_text()
    protocol_doc = (ROOT / "docs" / "protocol.md").read_text()
    for f in dataclasses.fields(Settings):
        assert f"`--{f.name.replace('_', '-')}`" in server_doc, f.name
    for code in P.ERROR_CODES:
        assert f"`{code}`" in protocol_doc, code
