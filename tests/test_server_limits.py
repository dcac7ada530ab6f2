"""The reference server's limits over real sockets: frame size, rate limit, handshake and
idle deadlines, reports and bans. Each test starts a server with the limit made small."""
from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any, Awaitable, Callable

import aiohttp

from reference_server.client import connect, pair_up
from tests.support import reference_server, time_unit

U = time_unit()
T = 5 * U


def run(body: Callable[[aiohttp.ClientSession], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with aiohttp.ClientSession() as http:
            return await asyncio.wait_for(body(http), 30 * U)

    return asyncio.run(main())


def test_frame_over_the_limit_closes_1009() -> None:
    with reference_server("--max-frame-bytes", "1024") as (base, _):
        async def body(http):
            lang = "big"
            a, b, _, _ = await pair_up(http, base, lang)
            await a.send("message", text="x" * 900)  # under the limit: relayed
            assert (await b.expect("message", T))["text"] == "x" * 900
            await a.send("message", text="x" * 1100)
            assert await a.close_code(T) == 1009
            await b.expect("partner_left", T, reason="disconnect")

        run(body)


def test_default_frame_limit_is_8_kib() -> None:
    with reference_server() as (base, _):
        async def body(http):
            a = await connect(http, base)
            await a.send_raw(json.dumps({"type": "ping", "t": "x" * 8000}))  # 8,027 bytes: accepted
            assert len((await a.expect("pong", T))["t"]) == 8000
            await a.send_raw(json.dumps({"type": "ping", "t": "x" * 8200}))
            assert await a.close_code(T) == 1009

        run(body)


def test_flood_is_rate_limited_then_closed_1008() -> None:
    with reference_server("--rate-limit", "2", "--rate-burst", "5", "--abuse-limit", "3",
                          "--abuse-window", "60") as (base, _):
        async def body(http):
            a = await connect(http, base)
            for i in range(30):
                await a.send("ping", t=i)
            frames = []
            code = None
            while True:
                try:
                    frames.append(await a.recv(T))
                except Exception:  # noqa: BLE001 - the close ends the stream
                    code = a.ws.close_code
                    break
            pongs = [f for f in frames if f["type"] == "pong"]
            limited = [f for f in frames if f["type"] == "error" and f["code"] == "rate_limited"]
            assert 5 <= len(pongs) <= 8  # the burst, plus a refill of 2 a second while the flood arrives
            assert [p["t"] for p in pongs] == list(range(len(pongs)))
            assert len(limited) == 4  # 3 tolerated, the 4th closes
            assert code == 1008
            # a well-behaved neighbour is unaffected
            b = await connect(http, base)
            await b.send("ping", t="ok")
            await b.expect("pong", T, t="ok")

        run(body)


def test_rate_limited_frame_changes_no_state_and_tokens_come_back() -> None:
    with reference_server("--rate-limit", "1", "--rate-burst", "2", "--abuse-limit", "50") as (base, _):
        async def body(http):
            a, b, _, _ = await pair_up(http, base, "rl")  # join used a's first token
            await a.send("message", text="one")
            await a.send("message", text="two")  # bucket empty: refused
            await b.expect("message", T, text="one")
            await a.expect("error", T, code="rate_limited")
            await asyncio.sleep(1.2)  # one token a second: refilled
            await a.send("message", text="three")
            await b.expect("message", T, text="three")
            await b.send("ping", t=1)
            await b.expect("pong", T, t=1)  # "two" never arrived

        run(body)


def _wait_closed(sock: socket.socket, timeout: float) -> bytes:
    """Read until the server closes the connection; return what it sent."""
    sock.settimeout(timeout)
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk


def test_socket_that_never_upgrades_is_closed_by_the_deadline() -> None:
    with reference_server("--handshake-timeout", str(U)) as (base, _):
        port = int(base.rsplit(":", 1)[1])
        slow = socket.create_connection(("127.0.0.1", port))
        silent = socket.create_connection(("127.0.0.1", port))
        try:
            slow.sendall(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")  # never finishes
            started = time.monotonic()
            assert _wait_closed(slow, 10 * U) == b""
            assert _wait_closed(silent, 10 * U) == b""
            assert time.monotonic() - started < 10 * U

            async def body(http):
                # a completed upgrade is not subject to the deadline
                a = await connect(http, base)
                await asyncio.sleep(1.5 * U)
                await a.send("ping", t="alive")
                await a.expect("pong", T, t="alive")
                text = await (await http.get(base + "/metrics")).text()
                line = next(x for x in text.splitlines() if x.startswith("chatload_server_handshake_timeouts_total"))
                assert float(line.split()[-1]) >= 2

            run(body)
        finally:
            slow.close()
            silent.close()


def test_idle_socket_that_never_joins_is_closed() -> None:
    with reference_server("--idle-timeout", str(U)) as (base, _):
        async def body(http):
            idle = await connect(http, base)
            joined = await connect(http, base)
            await joined.send("join", lang="idle")
            await joined.expect("waiting", T)
            assert await idle.close_code(T) == 1000
            await asyncio.sleep(1.2 * U)  # past the idle deadline, but waiting is not idle
            await joined.send("ping", t="w")
            await joined.expect("pong", T, t="w")
            # becoming idle again (leave) restarts the deadline
            await joined.send("leave")
            assert await joined.close_code(T) == 1000

        run(body)


def _xff(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


def test_reports_from_distinct_addresses_ban_the_reported_address() -> None:
    with reference_server("--trust-forwarded-for", "--report-threshold", "2", "--ban-duration", "60") as (base, _):
        async def body(http):
            victim_ip = "10.0.0.1"
            # the reported address also has a second session, chatting with a bystander
            v2, other, _, _ = await pair_up(http, base, "b2", headers_a=_xff(victim_ip), headers_b=_xff("10.0.0.4"))
            v1, r1, _, _ = await pair_up(http, base, "b1", headers_a=_xff(victim_ip), headers_b=_xff("10.0.0.2"))
            await r1.send("report", reason="abuse")
            await v1.expect("partner_left", T, reason="report")
            await v1.send("ping", t=1)
            await v1.expect("pong", T, t=1)  # one report: not banned
            await v1.send("join", lang="b1")
            await v1.expect("waiting", T)
            r2 = await connect(http, base, _xff("10.0.0.3"))
            await r2.send("join", lang="b1")
            await r2.expect("paired", T)
            await v1.expect("paired", T)
            await r2.send("report", reason="abuse again")
            # second distinct reporter: the address is banned
            await v1.expect("partner_left", T, reason="report")
            await v1.expect("error", T, code="banned")
            assert await v1.close_code(T) == 1008
            await v2.expect("error", T, code="banned")
            assert await v2.close_code(T) == 1008
            await other.expect("partner_left", T, reason="banned")
            # new connections from the address are refused
            again = await connect(http, base, _xff(victim_ip), expect_welcome=False)
            await again.expect("error", T, code="banned")
            assert await again.close_code(T) == 1008
            # everybody else is fine
            fine = await connect(http, base, _xff("10.0.0.5"))
            await fine.send("ping", t=2)
            await fine.expect("pong", T, t=2)

        run(body)


def test_reports_from_the_same_address_never_ban() -> None:
    # Without --trust-forwarded-for every test user is 127.0.0.1: reports never ban it.
    with reference_server("--report-threshold", "1") as (base, _):
        async def body(http):
            a, b, _, _ = await pair_up(http, base, "same")
            await a.send("report", reason="x")
            await b.expect("partner_left", T, reason="report")
            await b.send("ping", t=1)
            await b.expect("pong", T, t=1)
            c = await connect(http, base)
            await c.send("ping", t=2)
            await c.expect("pong", T, t=2)

        run(body)


def test_forwarded_header_is_ignored_unless_trusted() -> None:
    with reference_server("--report-threshold", "1") as (base, _):
        async def body(http):
            a, b, _, _ = await pair_up(http, base, "xff", headers_a=_xff("10.1.0.1"), headers_b=_xff("10.1.0.2"))
            await a.send("report", reason="x")
            await b.expect("partner_left", T, reason="report")
            await b.send("ping", t=1)
            await b.expect("pong", T, t=1)  # both are really 127.0.0.1: no ban

        run(body)


def test_peer_that_never_reads_is_closed_1008_and_its_partner_told() -> None:
    with reference_server("--rate-limit", "0", "--max-send-buffer", "65536") as (base, _):
        port = int(base.rsplit(":", 1)[1])
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window fills fast
        raw.connect(("127.0.0.1", port))
        try:
            raw.sendall(
                b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            join = b'{"type":"join","lang":"slow"}'
            raw.sendall(bytes((0x81, 0x80 | len(join))) + b"\0\0\0\0" + join)  # masked with a zero key

            async def body(http):
                sender = await connect(http, base)
                await sender.send("join", lang="slow")
                await sender.expect("paired", T)
                text = "x" * 2000
                told = asyncio.ensure_future(sender.recv(10 * T))
                for _ in range(400):  # at most 40 MB; the server gives up on the reader long before
                    for _ in range(50):
                        await sender.send("message", text=text)
                    await asyncio.sleep(0.001)
                    if told.done():
                        break
                assert await told == {"type": "partner_left", "reason": "disconnect"}
                metrics = await (await http.get(base + "/metrics")).text()
                assert 'chatload_server_closes_total{code="1008"} 1.0' in metrics

            run(body)
        finally:
            raw.close()
