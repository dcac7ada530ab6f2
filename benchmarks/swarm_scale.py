"""The swarm at scale: the peak hour of 3 million daily users, server and swarm on one machine.

Starts the multi-process reference server (`--workers N`, each worker also on its own
port so connections spread over N + 1 (address, port) targets on 127.0.0.1 and no target
runs out of its ~28,000 ephemeral ports), then `chatload run peak_hour` with M Locust
worker processes, the pre-fill ramp (`swarm.prefill` visitors over `swarm.prefill_ramp_s`)
and the scenario's real-time arrivals. Every second it samples, from /proc and the
server's /healthz: users online (connected sockets, global over the server's workers),
RSS and CPU of the server's processes and of the swarm's, the machine's CPU, memory and
TCP sockets; every 3 s it reads the swarm's results.partial.json for windowed pair and
relay p99. It prints name=value figures and the first limit hit, if any.

    python benchmarks/swarm_scale.py                        # the real thing (~10 min)
    python benchmarks/swarm_scale.py --idle 10000,50000     # harness memory per idle connection
    python benchmarks/swarm_scale.py --smoke                # ~500 users, ~15 s of load

Everything runs on 127.0.0.1, bounded in time; every process started here is stopped
(by its own process group) before the script exits. Figures: docs/scale.md.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.histogram import LogHistogram  # noqa: E402
from harness.ports import free_port_run  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# ------------------------------------------------------------------ /proc readings
def tree(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    out, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        try:
            kids = [int(c) for c in Path(f"/proc/{parent}/task/{parent}/children").read_text().split()]
        except OSError:
            continue
        out += kids
        frontier += kids
    return out


def proc_stat(pid: int) -> tuple[int, int, str] | None:
    """(rss bytes, cpu ticks, command line) of a process, or None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    return int(fields[21]) * PAGE, int(fields[11]) + int(fields[12]), cmd


def machine() -> dict[str, float]:
    cpu = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    mem = {ln.split(":")[0]: int(ln.split()[1]) * 1024 for ln in Path("/proc/meminfo").read_text().splitlines()}
    tcp = Path("/proc/net/sockstat").read_text().split("TCP:")[1].split("\n")[0].split()
    sock = dict(zip(tcp[::2], map(int, tcp[1::2])))
    return {"busy": sum(cpu) - cpu[3] - cpu[4], "total": sum(cpu), "mem_available": mem["MemAvailable"],
            "mem_total": mem["MemTotal"], "tcp_inuse": sock.get("inuse", 0), "tcp_tw": sock.get("tw", 0),
            "load1": float(Path("/proc/loadavg").read_text().split()[0])}


def healthz(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
        return json.loads(resp.read())


# ------------------------------------------------------------------ the processes
class Group:
    """A child in its own process group, stopped by that group only."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = open(log, "ab")
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True, env=env)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, grace: float = 20.0) -> None:
        if self.alive():
            try:
                os.killpg(self.proc.pid, sig)
                self.proc.wait(grace)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # anything left in the group
        except ProcessLookupError:
            pass
        self.proc.wait(10)
        self.log.close()


@dataclass
class Sample:
    t: float
    online: int
    server_rss: int
    swarm_rss: int  # Locust workers only (the users' memory)
    master_rss: int
    server_cpu: float  # cores used since the last sample
    swarm_cpu: float
    machine_cpu: float  # share of all cores busy, 0..1
    mem_available: int
    tcp_inuse: int
    tcp_tw: int
    load1: float
    pair_p99: float | None = None
    relay_p99: float | None = None


@dataclass
class Run:
    """One run's settings."""

    users: int
    prefill: int
    ramp_s: float
    duration_s: float
    server_workers: int
    swarm_workers: int
    idle: bool = False
    dau: int | None = None
    # Slots spawned per second over all Locust workers. Far above ~200 per worker, spawning
    # starves a worker's event loop long enough to miss Locust's heartbeats (3 s): the
    # master then drops every worker and stops the test.
    spawn_rate: float = 800.0
    out: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="swarm-scale-")))


def _window_p99(cur: dict | None, prev: dict | None) -> float | None:
    """p99 of the samples recorded between two cumulative histogram snapshots."""
    if not cur:
        return None
    before = (prev or {}).get("buckets", {})
    buckets = {k: c - before.get(k, 0) for k, c in cur.get("buckets", {}).items() if c - before.get(k, 0) > 0}
    n = sum(buckets.values())
    if n == 0:
        return None
    h = LogHistogram.from_dict({"buckets": buckets, "count": n, "sum": 0.0, "min": cur["min"], "max": cur["max"]})
    return h.percentile(99.0)


def execute(run: Run, echo: Any = print) -> tuple[list[Sample], dict | None, list[str]]:
    """Server + swarm, sampled every second; returns (samples, results.json, warnings seen)."""
    n = run.server_workers
    port = free_port_run(n + 1)
    sargs = ["--host", "127.0.0.1", "--port", str(port), "--workers", str(n), "--log-level", "warning",
             "--interest-fallback", "5"]
    if n > 1:
        sargs += ["--worker-port-base", str(port + 1)]
    if run.idle:
        sargs += ["--idle-timeout", "0"]
    server = Group([sys.executable, "-m", "reference_server", *sargs], run.out / "server.log")
    swarm: Group | None = None
    samples: list[Sample] = []
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                healthz(port)
                break
            except OSError:
                if time.monotonic() > deadline or not server.alive():
                    raise RuntimeError(f"the server did not start; see {run.out / 'server.log'}")
                time.sleep(0.1)
        time.sleep(0.5 if n == 1 else 1.0)  # workers connect to the core owner
        targets = f"127.0.0.1:{port}-{port + n}" if n > 1 else ""
        params = [f"swarm.prefill={run.prefill}", f"swarm.prefill_ramp_s={run.ramp_s:g}", f"swarm.targets={targets}",
                  "swarm.prefill_start_s=5"]
        if run.idle:
            params += ["swarm.idle=true"]
        if run.dau is not None:
            params += [f"dau={run.dau}"]
        argv = [sys.executable, "-m", "harness.cli", "run", "peak_hour", "--target", f"ws://127.0.0.1:{port}/ws",
                "--users", str(run.users), "--spawn-rate", f"{run.spawn_rate:g}", "--workers",
                str(run.swarm_workers), "--duration", f"{run.duration_s:g}s", "--seed", "1", "--out",
                str(run.out / "swarm"), "--progress-every", "10"]
        for p in params:
            argv += ["--param", p]
        base_server = sum(s[0] for s in filter(None, map(proc_stat, tree(server.proc.pid))))
        echo(f"# server: {n} worker(s) on 127.0.0.1:{port} (targets {targets or 'one port'}), "
             f"RSS {base_server / 2**20:.0f} MB; swarm: {run.swarm_workers} Locust workers, {run.users} slots, "
             f"pre-fill {run.prefill} over {run.ramp_s:g} s, {run.duration_s:g} s; output {run.out}")
        swarm = Group(argv, run.out / "chatload.log")
        hard_stop = time.monotonic() + run.duration_s + 240
        prev_cpu: dict[int, int] = {}
        prev_m = machine()
        prev_hist: dict[str, dict | None] = {"pair": None, "relay": None}
        last_hist_read = 0.0
        while swarm.alive() and time.monotonic() < hard_stop:
            time.sleep(1.0)
            m = machine()
            sp = {p: proc_stat(p) for p in tree(server.proc.pid)}
            wp = {p: proc_stat(p) for p in tree(swarm.proc.pid)}
            cpu_now = {p: s[1] for p, s in {**sp, **wp}.items() if s}
            delta = {p: (c - prev_cpu.get(p, c)) / TICK for p, c in cpu_now.items()}
            prev_cpu = cpu_now
            workers = [s for s in wp.values() if s and "--worker" in s[2]]
            master = [s for s in wp.values() if s and "--headless" in s[2]]
            try:
                online = int(healthz(port).get("online", 0))
            except (OSError, ValueError):
                online = -1
            sample = Sample(
                t=time.time(), online=online, server_rss=sum(s[0] for s in sp.values() if s),
                swarm_rss=sum(s[0] for s in workers), master_rss=sum(s[0] for s in master),
                server_cpu=sum(delta.get(p, 0) for p in sp), swarm_cpu=sum(delta.get(p, 0) for p in wp),
                machine_cpu=(m["busy"] - prev_m["busy"]) / max(1, m["total"] - prev_m["total"]),
                mem_available=int(m["mem_available"]), tcp_inuse=int(m["tcp_inuse"]), tcp_tw=int(m["tcp_tw"]),
                load1=m["load1"],
            )
            prev_m = m
            if time.monotonic() - last_hist_read >= 3.0:
                last_hist_read = time.monotonic()
                part = _read(run.out / "swarm" / "results.partial.json")
                if part:
                    hist = part.get("histograms", {})
                    sample.pair_p99 = _window_p99(hist.get("pair"), prev_hist["pair"])
                    sample.relay_p99 = _window_p99(hist.get("relay"), prev_hist["relay"])
                    prev_hist = {"pair": hist.get("pair"), "relay": hist.get("relay")}
            samples.append(sample)
            if len(samples) % 10 == 0:
                echo(f"# t={len(samples)}s online={online} cpu={sample.machine_cpu:.0%} "
                     f"server={sample.server_cpu:.2f} swarm={sample.swarm_cpu:.2f} cores "
                     f"swarm_rss={sample.swarm_rss / 2**20:.0f}MB server_rss={sample.server_rss / 2**20:.0f}MB "
                     f"load={sample.load1} pair_p99={_fmt(sample.pair_p99)} relay_p99={_fmt(sample.relay_p99)}")
    finally:
        if swarm is not None:
            swarm.stop(signal.SIGINT if swarm.alive() else signal.SIGTERM, grace=60)
        server.stop(signal.SIGTERM, grace=20)
    results = _read(run.out / "swarm" / "results.json") or _read(run.out / "swarm" / "results.partial.json")
    warnings = _warnings(run.out / "swarm")
    return samples, results, warnings


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}ms"


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _warnings(folder: Path) -> list[str]:
    """Locust's own overload and connection warnings from the swarm's logs (first of each kind)."""
    seen: dict[str, str] = {}
    for log in sorted(folder.glob("locust-*.log")):
        for line in log.read_text(errors="replace").splitlines():
            for key in ("CPU usage above", "Too many open files", "Cannot assign requested address",
                        "heartbeat", "missing", "MemoryError"):
                if key.lower() in line.lower() and key not in seen:
                    seen[key] = f"{log.name}: {line.strip()[:200]}"
    return list(seen.values())


# ------------------------------------------------------------------ figures
def first_limit(samples: list[Sample], results: dict | None, warnings: list[str]) -> str:
    """The first limit the run hit, in time order: memory, ports/sockets, CPU, event-loop lag."""
    errors = (results or {}).get("errors", {})
    if errors.get("connect_failed"):
        return f"sockets/ports: {errors['connect_failed']} connects failed (see the swarm logs)"
    busy_run = 0
    for i, s in enumerate(samples):
        if s.online <= 0:
            continue  # nothing of ours is connected yet (or any more): other jobs' load is not our limit
        if s.mem_available < 0.05 * (s.mem_available + s.server_rss + s.swarm_rss):
            return f"memory: {s.mem_available / 2**20:.0f} MB available at {s.online} online (t={i + 1}s)"
        busy_run = busy_run + 1 if s.machine_cpu >= 0.95 else 0
        if busy_run == 10:
            return (f"CPU: every core >= 95% busy for 10 s from t={i - 8}s, at {samples[i - 9].online} online "
                    f"(of it server {s.server_cpu:.2f} cores, swarm {s.swarm_cpu:.2f} cores; load {s.load1})")
    late = ((results or {}).get("arrivals", {}).get("lateness_ms") or {}).get("p99")
    if late is not None and late > 1000:
        return f"event-loop lag: arrival lateness p99 {late:.0f} ms"
    if any("CPU usage above" in w for w in warnings):
        return "event-loop lag: Locust warned a worker's CPU was above 90%"
    return "none"


def slope(xs: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of ys over xs (bytes per connection while connections rise)."""
    if len(xs) < 3:
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return None if var == 0 else sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var


def report(run: Run, samples: list[Sample], results: dict | None, warnings: list[str], prefix: str = "") -> dict:
    """name=value figures of one run."""
    r = results or {}
    ok = [s for s in samples if s.online >= 0]
    peak = max(ok, key=lambda s: s.online) if ok else None
    base = ok[0] if ok else None
    figures: dict[str, Any] = {}
    if peak is not None and base is not None:
        conns = max(1, peak.online)
        figures.update({
            "peak_connected_users": peak.online,
            "server_rss_mb_at_peak": round(peak.server_rss / 2**20, 1),
            "server_bytes_per_connection": round((peak.server_rss - base.server_rss) / conns),
            "harness_rss_mb_at_peak": round(peak.swarm_rss / 2**20, 1),
            "harness_bytes_per_connection_total": round(peak.swarm_rss / conns),
            "harness_bytes_per_connection_above_start": round((peak.swarm_rss - base.swarm_rss) / conns),
            "harness_rss_mb_at_start": round(base.swarm_rss / 2**20, 1),
            "master_rss_mb_at_peak": round(peak.master_rss / 2**20, 1),
        })
        # While the connections rise (slots already spawned): the cost of one more connection.
        rising = [s for s in ok[: ok.index(peak) + 1] if 0 < s.online < peak.online]
        for name, attr in (("harness", "swarm_rss"), ("server", "server_rss")):
            b = slope([s.online for s in rising], [getattr(s, attr) for s in rising])
            figures[f"{name}_bytes_per_connection_marginal"] = None if b is None else round(b)
    arr = r.get("arrivals", {})
    figures.update({
        "results_peak_concurrent": r.get("users", {}).get("peak_concurrent"),
        "pair_latency_p99_ms": r.get("pair_latency_ms", {}).get("p99"),
        "pair_latency_p50_ms": r.get("pair_latency_ms", {}).get("p50"),
        "relay_latency_p99_ms": r.get("relay_latency_ms", {}).get("p99"),
        "relay_latency_p50_ms": r.get("relay_latency_ms", {}).get("p50"),
        "pairs": r.get("throughput", {}).get("pairs"),
        "messages": r.get("throughput", {}).get("messages"),
        "arrivals_scheduled": arr.get("scheduled"),
        "arrivals_started": arr.get("started"),
        "dropped_arrivals": arr.get("dropped_arrivals"),
        "arrival_lateness_p99_ms": (arr.get("lateness_ms") or {}).get("p99"),
        "violations": r.get("correctness", {}).get("violations_total"),
        "errors": json.dumps({k: v for k, v in r.get("errors", {}).items() if v}),
    })
    if ok:
        cpu = ok[len(ok) // 10:]  # past the start
        figures.update({
            "machine_cpu_mean": round(sum(s.machine_cpu for s in cpu) / len(cpu), 3),
            "server_cores_mean": round(sum(s.server_cpu for s in cpu) / len(cpu), 3),
            "swarm_cores_mean": round(sum(s.swarm_cpu for s in cpu) / len(cpu), 3),
            "load1_max": max(s.load1 for s in ok),
            "tcp_inuse_max": max(s.tcp_inuse for s in ok),
            "windowed_pair_p99_ms_max": max((s.pair_p99 for s in ok if s.pair_p99 is not None), default=None),
        })
    figures["limit"] = first_limit(samples, results, warnings)
    for w in warnings:
        print(f"# swarm log: {w}")
    for k, v in figures.items():
        print(f"{prefix}{k}={v}")
    (run.out / "samples.json").write_text(json.dumps([s.__dict__ for s in samples]))
    return figures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="about 500 users for about 15 s")
    ap.add_argument("--users", type=int, default=60_000, help="user slots (Locust users)")
    ap.add_argument("--prefill", type=int, default=50_000, help="visitors online at the start, over --ramp")
    ap.add_argument("--ramp", type=float, default=240.0, help="pre-fill ramp, seconds")
    ap.add_argument("--duration", type=float, default=480.0, help="swarm run time, seconds")
    ap.add_argument("--server-workers", type=int, default=4)
    ap.add_argument("--workers", type=int, default=4, help="Locust worker processes")
    ap.add_argument("--idle", default="", help="comma-separated connection counts: idle memory runs instead")
    args = ap.parse_args(argv)
    if args.smoke:
        run = Run(users=600, prefill=400, ramp_s=4.0, duration_s=15.0, server_workers=2, swarm_workers=2, dau=300_000)
        report(run, *execute(run))
        return 0
    if args.idle:
        for count in (int(c) for c in args.idle.split(",") if c):
            workers = max(args.workers, -(-count // 15_000))
            ramp = max(5.0, count / 300)
            run = Run(users=count, prefill=count, ramp_s=ramp, duration_s=ramp + 40, server_workers=args.server_workers,
                      swarm_workers=workers, idle=True, dau=1)
            report(run, *execute(run), prefix=f"idle_{count}_")
        return 0
    run = Run(users=args.users, prefill=args.prefill, ramp_s=args.ramp, duration_s=args.duration,
              server_workers=args.server_workers, swarm_workers=args.workers)
    report(run, *execute(run))
    return 0


if __name__ == "__main__":
    sys.exit(main())
