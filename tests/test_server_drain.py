"""SIGTERM and SIGINT drain the reference server: joins refused, /healthz 503, every socket
closed with 1001, and the process gone within the drain deadline."""
from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
import urllib.error
import urllib.request
from typing import Any

import aiohttp
import pytest

from reference_server.client import connect, pair_up
from tests.support import reference_server, time_unit

U = time_unit()
T = 5 * U


def _healthz(base: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=5 * U) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _wait_exit(proc: Any, timeout: float) -> int:
    return proc.wait(timeout)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_drains_then_exits(sig: signal.Signals) -> None:
    grace, deadline = 2.0 * U, 5.0 * U  # every check while draining must fit in the grace
    with reference_server("--drain-grace", str(grace), "--drain-timeout", str(deadline)) as (base, proc):
        async def body() -> None:
            async with aiohttp.ClientSession() as http:
                a, b, _, _ = await pair_up(http, base, "dr")
                waiting = await connect(http, base)
                await waiting.send("join", lang="dr2")
                await waiting.expect("waiting", T)
                idle = await connect(http, base)
                assert (await asyncio.to_thread(_healthz, base)) == (200, {"status": "ok", "online": 4, "waiting": 1})

                proc.send_signal(sig)
                signalled = time.monotonic()
                # draining: /healthz says so with 503 ...
                for _ in range(50):
                    status, doc = await asyncio.to_thread(_healthz, base)
                    if status == 503:
                        break
                    await asyncio.sleep(0.02)
                assert status == 503 and doc["status"] == "draining" and doc["online"] == 4
                # ... joins and next are refused with draining, chats go on meanwhile
                await idle.send("join", lang="dr3")
                await idle.expect("error", T, code="draining")
                await a.send("next")
                await a.expect("error", T, code="draining")
                await a.send("message", text="still relayed")
                await b.expect("message", T, text="still relayed")
                await idle.send("ping", t="p")
                await idle.expect("pong", T, t="p")
                # a new socket gets draining and 1001 instead of welcome
                late = await connect(http, base, expect_welcome=False)
                await late.expect("error", T, code="draining")
                assert await late.close_code(T) == 1001
                # after the grace period every socket is closed with 1001
                codes = await asyncio.gather(*(c.close_code(grace + T) for c in (a, b, waiting, idle)))
                assert codes == [1001, 1001, 1001, 1001]
                assert time.monotonic() - signalled >= grace * 0.9
                await asyncio.to_thread(_wait_exit, proc, deadline + 2 * U)
                assert time.monotonic() - signalled < deadline + 2 * U

        asyncio.run(asyncio.wait_for(body(), 30 * U))
        assert proc.returncode == 0


def test_no_sessions_exits_at_once() -> None:
    with reference_server("--drain-grace", "5", "--drain-timeout", "8") as (base, proc):
        assert _healthz(base)[0] == 200
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(8 + 2 * U) == 0
        # the grace period only serves open sessions
        assert time.monotonic() - started < 5


def test_exits_within_deadline_when_a_client_ignores_the_close() -> None:
    deadline = 3.0
    with reference_server("--drain-grace", "0.5", "--drain-timeout", str(deadline)) as (base, proc):
        port = int(base.rsplit(":", 1)[1])
        raw = socket.create_connection(("127.0.0.1", port))
        try:
            raw.sendall(
                b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            raw.settimeout(5 * U)
            head = raw.recv(4096)
            assert head.startswith(b"HTTP/1.1 101")
            # never read again, never answer the close frame
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            proc.wait(deadline + 2 * U)
            assert time.monotonic() - started < deadline + 2 * U
        finally:
            raw.close()


def test_chatload_serve_runs_the_same_server_without_locust() -> None:
    import subprocess
    import sys

    from tests.support import ROOT, free_port, python_server

    probe = subprocess.run(
        [sys.executable, "-c", "import sys, harness.cli, reference_server.app; harness.cli.build_parser(); "
         "sys.exit('locust' in sys.modules or 'gevent' in sys.modules)"],
        cwd=ROOT, timeout=30 * U,
    )
    assert probe.returncode == 0, "`chatload serve` (the CLI with every subcommand's options) imports locust or gevent"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with python_server(["-m", "harness.cli", "serve", "--port", str(port), "--idle-timeout", "7"],
                       f"{base}/healthz") as proc:
        assert _healthz(base) == (200, {"status": "ok", "online": 0, "waiting": 0})
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10 * U) == 0
