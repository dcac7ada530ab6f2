"""Throughput and latency of the reference server on loopback.

Starts `python -m reference_server` as a subprocess (rate limit and idle deadline off),
then drives it from this process with a minimal raw asyncio WebSocket client:

1. pairs per second at saturation: every client loops join -> paired -> leave+join
   (the initiator leaves; its partner rejoins on partner_left);
2. relayed messages per second at saturation: paired clients ping-pong `message`
   frames with a fixed window in flight per client;
3. pair latency at half the measured pair rate: couples of joins sent back to back at
   Poisson times; latency is one join sent to its `paired` received (p50, p99).

Figures are printed one per line as `name=value`. `--smoke` runs a few seconds in all.
Both processes share the machine's cores, so the figures are a floor for the server:
the client in one Python process may saturate first (see client_cpu_seconds).

    python benchmarks/server_throughput.py [--smoke] [--clients 200] [--seconds 5]
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.ports import free_port  # noqa: E402

PAIRED = b'{"type":"paired"'
MESSAGE = b'{"type":"message"'
PARTNER_LEFT = b'{"type":"partner_left"'
WELCOME = b'{"type":"welcome"'
ZERO_MASK = b"\x00\x00\x00\x00"  # a zero mask leaves the payload as is: fine for a loopback benchmark


def encode_frame(payload: bytes) -> bytes:
    """A masked client text frame (RFC 6455 requires clients to mask)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x81, 0x80 | n))
    elif n < 65536:
        head = bytes((0x81, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x81, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + ZERO_MASK + payload


JOIN = encode_frame(b'{"type":"join","lang":"bench"}')
LEAVE = encode_frame(b'{"type":"leave"}')
LEAVE_JOIN = LEAVE + JOIN


class RawWs(asyncio.Protocol):
    """A bare WebSocket client connection: upgrade, then text frames to `on_frame`."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.upgraded = asyncio.get_running_loop().create_future()
        self.on_frame: Callable[["RawWs", bytes], None] = lambda ws, payload: None
        self.closed = False
        # per-phase scratch fields
        self.sent_at = 0.0
        self.initiator = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(  # type: ignore[attr-defined]
            f"GET /ws HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.upgraded.done():
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.upgraded.set_exception(RuntimeError(bytes(buf[:80]).decode(errors="replace")))
                return
            del buf[: end + 4]
            self.upgraded.set_result(None)
        pos, size = 0, len(buf)
        while size - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            n = b1 & 0x7F
            head = 2
            if n == 126:
                if size - pos < 4:
                    break
                n = int.from_bytes(buf[pos + 2:pos + 4], "big")
                head = 4
            elif n == 127:
                if size - pos < 10:
                    break
                n = int.from_bytes(buf[pos + 2:pos + 10], "big")
                head = 10
            if size - pos < head + n:
                break
            payload = bytes(buf[pos + head:pos + head + n])
            pos += head + n
            opcode = b0 & 0x0F
            if opcode == 1:
                self.on_frame(self, payload)
            elif opcode == 8:
                self.closed = True
            elif opcode == 9 and self.transport is not None:
                self.transport.write(bytes((0x8A, 0x80 | len(payload))) + ZERO_MASK + payload)
        del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True

    def send(self, frame: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame)


async def open_clients(host: str, port: int, count: int) -> list[RawWs]:
    loop = asyncio.get_running_loop()
    clients: list[RawWs] = []
    for start in range(0, count, 50):  # connect in small batches: the accept backlog stays small
        batch = []
        for _ in range(min(50, count - start)):
            _, proto = await loop.create_connection(lambda: RawWs(host, port), host, port)
            batch.append(proto)
        await asyncio.gather(*(p.upgraded for p in batch))
        clients += batch
    return clients


def close_clients(clients: list[RawWs]) -> None:
    for c in clients:
        if c.transport is not None:
            c.transport.close()


async def settle(seconds: float = 0.3) -> None:
    await asyncio.sleep(seconds)


# ---------------------------------------------------------------- phase 1: pairs per second
async def pair_rate(host: str, port: int, clients_n: int, warmup: float, seconds: float) -> float:
    counter = {"paired": 0}

    def on_frame(ws: RawWs, payload: bytes) -> None:
        if payload.startswith(PAIRED):
            counter["paired"] += 1
            if b'"initiator":true' in payload:
                ws.send(LEAVE_JOIN)
        elif payload.startswith(PARTNER_LEFT):
            ws.send(JOIN)

    clients = await open_clients(host, port, clients_n)
    for c in clients:
        c.on_frame = on_frame
        c.send(JOIN)
    await asyncio.sleep(warmup)
    start_count, start = counter["paired"], time.perf_counter()
    await asyncio.sleep(seconds)
    done, elapsed = counter["paired"] - start_count, time.perf_counter() - start
    close_clients(clients)
    await settle()
    return done / 2 / elapsed


# ---------------------------------------------------------------- phase 2: relayed messages per second
async def relay_rate(host: str, port: int, clients_n: int, window: int, warmup: float, seconds: float) -> float:
    counter = {"messages": 0}
    text = encode_frame(b'{"type":"message","text":"hello there, how are you?"}')
    burst = text * window

    def on_frame(ws: RawWs, payload: bytes) -> None:
        if payload.startswith(MESSAGE):
            counter["messages"] += 1
            ws.send(text)
        elif payload.startswith(PAIRED):
            ws.send(burst)

    clients = await open_clients(host, port, clients_n - clients_n % 2)
    for c in clients:
        c.on_frame = on_frame
        c.send(JOIN)
    await asyncio.sleep(warmup)
    start_count, start = counter["messages"], time.perf_counter()
    await asyncio.sleep(seconds)
    done, elapsed = counter["messages"] - start_count, time.perf_counter() - start
    close_clients(clients)
    await settle()
    return done / elapsed


# ---------------------------------------------------------------- phase 3: latency at a fixed rate
async def pair_latency(host: str, port: int, rate: float, pool_n: int, seconds: float,
                       seed: int = 1) -> tuple[list[float], float, int]:
    """Couples of joins at Poisson times (rate = couples per second); returns latencies (s)."""
    latencies: list[float] = []
    idle: list[RawWs] = []
    perf = time.perf_counter

    def on_frame(ws: RawWs, payload: bytes) -> None:
        if payload.startswith(PAIRED):
            latencies.append(perf() - ws.sent_at)
            if b'"initiator":true' in payload:
                ws.send(LEAVE)
                idle.append(ws)
        elif payload.startswith(PARTNER_LEFT):
            idle.append(ws)

    clients = await open_clients(host, port, pool_n)
    for c in clients:
        c.on_frame = on_frame
    idle.extend(clients)
    rng = random.Random(seed)
    skipped = 0
    sent = 0
    start = perf()
    next_at = start
    end = start + seconds
    while True:
        next_at += rng.expovariate(rate)
        if next_at >= end:
            break
        delay = next_at - perf()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(idle) < 2:
            skipped += 1
            continue
        a, b = idle.pop(), idle.pop()
        a.sent_at = perf()
        a.send(JOIN)
        b.sent_at = perf()
        b.send(JOIN)
        sent += 1
    await asyncio.sleep(0.5)
    elapsed = perf() - start
    close_clients(clients)
    await settle()
    return latencies, sent / max(elapsed - 0.5, 1e-9), skipped


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, int(round(q / 100 * (len(ordered) - 1)))))
    return ordered[k]


# ---------------------------------------------------------------- server process
def start_server(port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "reference_server", "--host", "127.0.0.1", "--port", str(port),
         "--rate-limit", "0", "--idle-timeout", "0", "--heartbeat", "0", "--log-level", "warning"],
        cwd=ROOT,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return proc
        except Exception:  # noqa: BLE001 - not up yet
            if proc.poll() is not None:
                raise RuntimeError("the server exited at startup")
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the server did not start")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def main_async(args: argparse.Namespace, host: str, port: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    cpu0 = time.process_time()
    figures["pairs_per_second"] = await pair_rate(host, port, args.clients, args.warmup, args.seconds)
    figures["relayed_messages_per_second"] = await relay_rate(
        host, port, args.clients, args.window, args.warmup, args.seconds
    )
    target = figures["pairs_per_second"] / 2
    latencies, achieved, skipped = await pair_latency(host, port, target, args.latency_pool, args.seconds)
    figures["latency_target_pairs_per_second"] = target
    figures["latency_achieved_pairs_per_second"] = achieved
    figures["latency_skipped_arrivals"] = skipped
    figures["pair_latency_samples"] = len(latencies)
    figures["pair_latency_p50_ms"] = percentile(latencies, 50) * 1000
    figures["pair_latency_p99_ms"] = percentile(latencies, 99) * 1000
    figures["client_cpu_seconds"] = time.process_time() - cpu0
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a few seconds in all (CI smoke run)")
    parser.add_argument("--clients", type=int, default=200, help="connections in the saturation phases")
    parser.add_argument("--window", type=int, default=4, help="messages in flight per client (relay phase)")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per phase")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each phase")
    parser.add_argument("--latency-pool", type=int, default=400, help="connections available in the latency phase")
    parser.add_argument("--target", help="host:port of a running reference server (default: start one)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.clients, args.seconds, args.warmup, args.latency_pool = 40, 0.6, 0.3, 100
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    proc = None
    if args.target:
        host, _, port_text = args.target.rpartition(":")
        port = int(port_text)
    else:
        host, port = "127.0.0.1", free_port()
        proc = start_server(port)
    try:
        figures = runner(main_async(args, host, port))
    finally:
        if proc is not None:
            stop_server(proc)
    for name, value in figures.items():
        print(f"{name}={value:.6g}" if isinstance(value, float) else f"{name}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
