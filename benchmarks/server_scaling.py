"""How the reference server scales with its process count, and what an idle connection costs.

For each process count (default 1, 2, 4) it starts `python -m reference_server --workers N`
(1 = the single-process server, unchanged; N > 1 = N workers around one core owner) with
the per-connection limits off, and measures from client processes on loopback:

- pairs per second at saturation (join / paired / leave+join loops, as in server_throughput.py);
- relayed messages per second at saturation (ping-pong with a window in flight per client),
  and the share of relayed frames that crossed processes (read from each worker's /cluster);
- the scaling ratio: each figure over the 1-process figure.

Then memory per idle connection: the RSS of every server process (from /proc) before and
after opening `--memory` idle WebSockets (several client processes, each under 20,000
sockets, spread over 127.0.0.x source addresses so ephemeral ports do not run short).

Figures are printed as `name=value` lines. The clients share the machine with the server,
so on a small machine the figures are floors; the load average is printed with them.

    python benchmarks/server_scaling.py [--smoke] [--workers 1,2,4] [--memory 10000,50000]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.server_throughput import RawWs, pair_rate, relay_rate  # noqa: E402
from harness.ports import free_port_run  # noqa: E402

PER_CLIENT_PROCESS = 15_000  # sockets per client process (the file limit here is 20,000)
PER_SOURCE_ADDRESS = 20_000  # connections per 127.0.0.x source (ephemeral ports: about 28,000)


# ---------------------------------------------------------------- the server
class Server:
    """`python -m reference_server --workers N` on free ports; per-worker ports when N > 1."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        base = free_port_run(workers + 1)
        self.port = base
        self.worker_ports = [base + 1 + k for k in range(workers)] if workers > 1 else []
        argv = [sys.executable, "-m", "reference_server", "--host", "127.0.0.1", "--port", str(base),
                "--workers", str(workers), "--rate-limit", "0", "--idle-timeout", "0", "--heartbeat", "0",
                "--handshake-timeout", "120", "--log-level", "warning"]
        if workers > 1:
            argv += ["--worker-port-base", str(base + 1)]
        self.proc = subprocess.Popen(argv, cwd=ROOT)
        self._wait_ready()

    def _get(self, url: str) -> dict:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return json.loads(resp.read())

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("the server exited at startup")
            try:
                self._get(f"http://127.0.0.1:{self.port}/healthz")
                if all(s["core_connected"] for s in self.statuses()):
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("the server did not start")

    def statuses(self) -> list[dict]:
        return [self._get(f"http://127.0.0.1:{p}/cluster") for p in self.worker_ports]

    def pair_counts(self) -> tuple[int, int]:
        """(pairs made, of which across workers), from the core owner's last stats."""
        time.sleep(0.3)  # stats are refreshed every 0.1 s
        s = self.statuses()[0]
        return s["pairs_made"], s["pairs_across_workers"]

    def relay_counts(self) -> tuple[int, int]:
        """(relayed frames, of which crossed processes), summed over the workers."""
        states = self.statuses()
        return sum(s["relayed"] for s in states), sum(s["cross_process_relays"] for s in states)

    def pids(self) -> list[int]:
        """The supervisor (or single process) and all its descendants."""
        pids, frontier = [self.proc.pid], [self.proc.pid]
        while frontier:
            parent = frontier.pop()
            try:
                children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
            except OSError:
                continue
            for c in map(int, children):
                pids.append(c)
                frontier.append(c)
        return pids

    def rss_bytes(self) -> int:
        total = 0
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            except OSError:
                pass
        return total

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ---------------------------------------------------------------- client processes
def _loop_runner() -> Any:
    try:
        import uvloop

        return uvloop.run
    except ImportError:  # pragma: no cover
        return asyncio.run


def _throughput_child(args: tuple) -> float:
    phase, port, clients, window, warmup, seconds = args
    runner = _loop_runner()
    if phase == "pairs":
        return runner(pair_rate("127.0.0.1", port, clients, warmup, seconds))
    return runner(relay_rate("127.0.0.1", port, clients, window, warmup, seconds))


def saturate(phase: str, port: int, procs: int, clients: int, window: int, warmup: float, seconds: float) -> float:
    """Run one saturation phase from `procs` client processes at once; the summed rate."""
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(procs) as pool:
        rates = pool.map(_throughput_child, [(phase, port, clients // procs, window, warmup, seconds)] * procs)
    return sum(rates)


async def _hold_idle(port: int, sources: list[str], count: int, conn: Any) -> None:
    loop = asyncio.get_running_loop()
    clients: list[RawWs] = []
    failed = 0
    for start in range(0, count, 100):
        batch = []
        for k in range(start, min(count, start + 100)):
            src = sources[k % len(sources)]
            try:
                _, proto = await loop.create_connection(lambda: RawWs("127.0.0.1", port), "127.0.0.1", port,
                                                        local_addr=(src, 0))
                batch.append(proto)
            except OSError:
                failed += 1
        results = await asyncio.gather(*(asyncio.wait_for(p.upgraded, 60) for p in batch), return_exceptions=True)
        failed += sum(1 for r in results if isinstance(r, BaseException))
        clients += batch
    conn.send((len(clients) - failed, failed, _own_rss()))
    await loop.run_in_executor(None, conn.recv)  # hold them until told to let go
    for c in clients:
        if c.transport is not None:
            c.transport.close()


def _own_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _idle_child(port: int, sources: list[str], count: int, conn: Any) -> None:
    _loop_runner()(_hold_idle(port, sources, count, conn))


def idle_memory(server: Server, total: int) -> dict[str, float]:
    """RSS per idle connection on the server (and on the raw clients), `total` connections."""
    procs = max(1, -(-total // PER_CLIENT_PROCESS))
    sources = [f"127.0.0.{2 + i}" for i in range(max(1, -(-total // PER_SOURCE_ADDRESS)))]
    time.sleep(0.5)
    before = server.rss_bytes()
    ctx = multiprocessing.get_context("fork")
    pipes, children = [], []
    started = time.monotonic()
    for i in range(procs):
        share = total // procs + (1 if i < total % procs else 0)
        parent, child = ctx.Pipe()
        p = ctx.Process(target=_idle_child, args=(server.port, sources, share, child))
        p.start()
        pipes.append(parent)
        children.append(p)
    reports = [pipe.recv() for pipe in pipes]
    opened = sum(r[0] for r in reports)
    failed = sum(r[1] for r in reports)
    setup = time.monotonic() - started
    time.sleep(1.0)
    after = server.rss_bytes()
    per_worker = [s["local_online"] for s in server.statuses()] if server.worker_ports else [opened]
    for pipe in pipes:
        pipe.send("close")
    for p in children:
        p.join(60)
    client_rss = sum(r[2] for r in reports)
    return {
        "connections": opened,
        "failed": failed,
        "setup_seconds": setup,
        "server_rss_before_mb": before / 2**20,
        "server_rss_after_mb": after / 2**20,
        "server_bytes_per_connection": (after - before) / max(opened, 1),
        "raw_client_bytes_per_connection": client_rss / max(opened, 1),
        "per_worker": per_worker,
    }


# ---------------------------------------------------------------- cost per relayed message, local vs crossing
def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / tick


async def relay_placed(port_a: int, port_b: int, pairs: int, window: int, warmup: float, seconds: float,
                       lang: str = "c") -> dict:
    """Ping-pong in `pairs` pairs whose members sit on the given ports (so on chosen workers);
    pair i joins the pool `lang` + i (at most 8 characters), so only its two members can meet."""
    from benchmarks.server_throughput import MESSAGE, PAIRED, encode_frame

    loop = asyncio.get_running_loop()
    counter = {"messages": 0}
    text = encode_frame(b'{"type":"message","text":"hello there, how are you?"}')
    burst = text * window
    paired = {"n": 0}

    def on_frame(ws: RawWs, payload: bytes) -> None:
        if payload.startswith(MESSAGE):
            counter["messages"] += 1
            ws.send(text)
        elif payload.startswith(PAIRED):
            paired["n"] += 1
            ws.send(burst)

    clients: list[RawWs] = []
    for i in range(pairs):
        join = encode_frame(b'{"type":"join","lang":"%s%d"}' % (lang.encode(), i))
        for port in (port_a, port_b):
            _, proto = await loop.create_connection(lambda p=port: RawWs("127.0.0.1", p), "127.0.0.1", port)
            await proto.upgraded
            proto.on_frame = on_frame
            proto.send(join)
            clients.append(proto)
    await asyncio.sleep(warmup)
    start_count, start = counter["messages"], time.perf_counter()
    await asyncio.sleep(seconds)
    done, elapsed = counter["messages"] - start_count, time.perf_counter() - start
    for c in clients:
        if c.transport is not None:
            c.transport.close()
    await asyncio.sleep(0.3)
    return {"rate": done / elapsed, "messages": done, "paired": paired["n"]}


def relay_cost(pairs: int, window: int, warmup: float, seconds: float) -> dict[str, float]:
    """Server CPU per relayed message: one process; 2 workers with local pairs; with crossing pairs.

    One server per process count (the local and crossing phases share the 2-worker server, each
    phase with its own langs, after the previous phase's clients closed): CPU is read as a
    difference around each phase, so sharing changes no figure and saves server starts."""
    out: dict[str, float] = {}
    runner = _loop_runner()
    servers: dict[int, Server] = {}
    try:
        for label, workers, crossing in (("single", 1, False), ("local", 2, False), ("crossing", 2, True)):
            if workers not in servers:
                servers[workers] = Server(workers)
            server = servers[workers]
            ports = server.worker_ports or [server.port]
            port_a, port_b = ports[0], (ports[1] if crossing else ports[0])
            pids = server.pids()
            cpu0 = cpu_seconds(pids)
            wall0 = time.perf_counter()
            r = runner(relay_placed(port_a, port_b, pairs, window, warmup, seconds, lang=label[0]))
            wall = time.perf_counter() - wall0
            cpu = cpu_seconds(pids) - cpu0
            # CPU over the whole run (warm-up included) divided by the messages of the whole run,
            # estimated from the measured rate: the ratio is what matters.
            total_msgs = r["rate"] * (wall - 0.3)
            out[f"cost_{label}_relayed_messages_per_second"] = r["rate"]
            out[f"cost_{label}_server_cpu_us_per_message"] = cpu / max(total_msgs, 1) * 1e6
            # One pair, one message in flight each way: the time a message takes, end to end.
            one = runner(relay_placed(port_a, port_b, 1, 1, warmup, seconds, lang=label[0] + "o"))
            out[f"cost_{label}_one_pair_message_latency_us"] = 2e6 / max(one["rate"], 1e-9)
    finally:
        for server in servers.values():
            server.stop()
    return out


# ---------------------------------------------------------------- main
def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a few seconds in all (CI smoke run)")
    parser.add_argument("--workers", default="1,2,4", help="process counts to measure")
    parser.add_argument("--clients", type=int, default=200, help="connections per saturation phase")
    parser.add_argument("--client-procs", type=int, default=2, help="client processes per saturation phase")
    parser.add_argument("--window", type=int, default=4, help="messages in flight per client (relay phase)")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per phase")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each phase")
    parser.add_argument("--memory", default="10000", help="idle connection counts for the memory figure ('' to skip)")
    parser.add_argument("--memory-workers", type=int, default=4, help="server processes in the memory phase")
    parser.add_argument("--cost-pairs", type=int, default=50, help="pairs in the cost-per-message phase (0 skips)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.workers, args.clients, args.client_procs, args.cost_pairs = "1,2", 40, 1, 10
        args.seconds, args.warmup, args.memory, args.memory_workers = 0.4, 0.2, "300", 2
    counts = [int(x) for x in args.workers.split(",") if x]
    print(f"loadavg_start={loadavg()}")
    print(f"cpus={len(os.sched_getaffinity(0))}")
    base: dict[str, float] = {}
    for n in counts:
        server = Server(n)
        try:
            pairs = saturate("pairs", server.port, args.client_procs, args.clients, args.window,
                             args.warmup, args.seconds)
            before = server.relay_counts() if n > 1 else (0, 0)
            relays = saturate("relays", server.port, args.client_procs, args.clients, args.window,
                              args.warmup, args.seconds)
            after = server.relay_counts() if n > 1 else (0, 0)
            made, across = server.pair_counts() if n > 1 else (0, 0)
        finally:
            server.stop()
        relayed, crossed = after[0] - before[0], after[1] - before[1]
        share = crossed / relayed if relayed else 0.0
        print(f"workers_{n}_pairs_per_second={pairs:.6g}")
        print(f"workers_{n}_relayed_messages_per_second={relays:.6g}")
        print(f"workers_{n}_crossed_share={share:.4f}")
        print(f"workers_{n}_pairs_across_workers_share={across / made if made else 0.0:.4f}")
        if not base:
            base = {"pairs": pairs, "relays": relays}
        print(f"workers_{n}_pairs_scaling={pairs / base['pairs']:.3f}")
        print(f"workers_{n}_relays_scaling={relays / base['relays']:.3f}")
    if args.cost_pairs:
        for name, value in relay_cost(args.cost_pairs, args.window, args.warmup, args.seconds).items():
            print(f"{name}={value:.6g}")
    for total in [int(x) for x in args.memory.split(",") if x]:
        workers = args.memory_workers
        server = Server(workers)
        try:
            m = idle_memory(server, total)
        finally:
            server.stop()
        for name, value in m.items():
            if isinstance(value, float):
                print(f"idle_{total}_{name}={value:.6g}")
            else:
                print(f"idle_{total}_{name}={value}")
        print(f"idle_{total}_server_workers={workers}")
    print(f"loadavg_end={loadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
