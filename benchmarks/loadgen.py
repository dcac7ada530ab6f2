"""Load-generator efficiency: relayed chat messages per CPU-second of the load generator.

    python benchmarks/loadgen.py            # ~10 s against the reference server
    python benchmarks/loadgen.py --smoke    # a few seconds

Why: the harness must drive a big backend from a few cores, so the per-message path
(wsclient + protocol_client + LogHistogram under gevent, exactly what the Locust users
run) is measured on its own. The reference server runs in its own process on 127.0.0.1
and its CPU is not counted; the figure is relayed messages received by the users in the
measuring window divided by the user+system CPU time (getrusage) the load-generator
process(es) spent in that window.

Users are gevent greenlets (gevent monkey-patches like Locust does). Each joins in text
mode, sends the in-band token `~tok {user} {chat}`, then chats `~msg {user} {chat} {seq}
{send_ns} {padding}` messages: it keeps `--window` messages in flight and answers every
message it receives with a new one (batched into one write per read), recording the relay
latency from the carried send time into a LogHistogram and checking sender, chat and order.
Bounded: `--duration` seconds and `--max-messages`, whichever comes first.
The LAST line printed is `msgs_per_cpu_second=N`.
"""
from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from harness.histogram import LogHistogram  # noqa: E402
from harness.ports import free_port  # noqa: E402
from harness.protocol_client import Message, Paired, PartnerLeft, ReferenceClient  # noqa: E402
from harness.wsclient import ConnectionClosed, connect  # noqa: E402


class Stats:
    """Shared counters of one load-generator process (greenlets never preempt each other)."""

    def __init__(self) -> None:
        self.received = 0
        self.sent = 0
        self.paired = 0
        self.bad_order = 0
        self.cross_talk = 0
        self.errors: list[str] = []
        self.latency = LogHistogram()
        self.stop = False
        self.measuring = False


def chat_user(uid: str, url: str, window: int, padding: str, stats: Stats) -> None:
    """One user: join, exchange tokens, chat until stopped. The message path is inline on purpose."""
    ws = connect(url, timeout=10.0)
    proto = ReferenceClient()
    try:
        ws.send_json(proto.join("text"))
        peer = None
        backlog: list = []
        chat = -1
        while peer is None and not stats.stop:
            frames = ws.recv_many()
            for k, frame in enumerate(frames):
                ev = proto.receive(frame)
                if type(ev) is Paired:
                    chat += 1
                    stats.paired += 1
                    ws.send_json(proto.message(f"~tok {uid} {chat}"))
                elif type(ev) is Message and ev.text.startswith("~tok "):
                    _, peer_user, peer_chat = ev.text.split(" ")
                    peer = (peer_user, peer_chat)
                    backlog = frames[k + 1 :]  # the partner's first messages may share this read
                    break
        if peer is None:
            return
        peer_user, peer_chat = peer
        seq = 0
        now = time.time_ns()
        prefix = f"~msg {uid} {chat} "
        ws.send_json_many([proto.message(f"{prefix}{seq + i} {now} {padding}") for i in range(window)])
        seq += window
        stats.sent += window
        hist_record = stats.latency.record
        receive = proto.receive
        message = proto.message
        time_ns = time.time_ns
        expect = 0
        while not stats.stop:
            frames = backlog or ws.recv_many()
            backlog = []
            now = time_ns()
            out = []
            for frame in frames:
                ev = receive(frame)
                if type(ev) is not Message:
                    if type(ev) is PartnerLeft:
                        return
                    continue
                _, who, their_chat, their_seq, sent_ns, _pad = ev.text.split(" ", 5)
                if who != peer_user or their_chat != peer_chat:
                    stats.cross_talk += 1
                if int(their_seq) != expect:
                    stats.bad_order += 1
                expect = int(their_seq) + 1
                hist_record((now - int(sent_ns)) * 1e-6)
                out.append(message(f"{prefix}{seq} {now} {padding}"))
                seq += 1
            if stats.measuring:
                stats.received += len(out)
            if out and not stats.stop:
                ws.send_json_many(out)
                stats.sent += len(out)
    except ConnectionClosed as exc:
        if not stats.stop:
            stats.errors.append(f"{uid}: {exc}")
    finally:
        ws.abort() if stats.stop else ws.close(timeout=1.0)


def cpu_seconds() -> tuple[float, float]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime, ru.ru_stime


def run_load(url: str, users: int, window: int, padding: int, warmup: float, duration: float,
             max_messages: int, tag: str) -> dict:
    """Run the users in this process; return counts, CPU seconds and the latency histogram."""
    stats = Stats()
    pad = "p" * max(1, padding)
    greenlets = [gevent.spawn(chat_user, f"{tag}-{i}", url, window, pad, stats) for i in range(users)]
    deadline = time.monotonic() + warmup + duration + 30.0
    while stats.paired < users and time.monotonic() < deadline and not all(g.dead for g in greenlets):
        gevent.sleep(0.05)
    gevent.sleep(warmup)
    stats.latency.clear()
    u0, s0 = cpu_seconds()
    t0 = time.monotonic()
    stats.measuring = True
    end = t0 + duration
    while time.monotonic() < end and stats.received < max_messages and not all(g.dead for g in greenlets):
        gevent.sleep(0.05)
    stats.measuring = False
    u1, s1 = cpu_seconds()
    wall = time.monotonic() - t0
    stats.stop = True
    gevent.joinall(greenlets, timeout=5.0)
    gevent.killall([g for g in greenlets if not g.dead], timeout=2.0)
    failed = [repr(g.exception) for g in greenlets if g.exception is not None]
    return {
        "users": users,
        "paired": stats.paired,
        "received": stats.received,
        "wall_s": wall,
        "cpu_user_s": u1 - u0,
        "cpu_sys_s": s1 - s0,
        "bad_order": stats.bad_order,
        "cross_talk": stats.cross_talk,
        "errors": stats.errors[:5] + failed[:5],
        "latency": stats.latency.to_dict(),
    }


def start_reference_server(port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "reference_server", "--host", "127.0.0.1", "--port", str(port),
           "--rate-limit", "0", "--heartbeat", "0", "--idle-timeout", "0", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20.0
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"reference server exited: {proc.stderr.read().decode(errors='replace')}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as resp:
                if resp.status == 200:
                    return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("reference server did not start within 20 s")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--target", help="ws:// URL of a running server (default: start the reference server)")
    p.add_argument("--users", type=int, default=100, help="chat users (even: they pair up)")
    p.add_argument("--window", type=int, default=8, help="messages each user keeps in flight")
    p.add_argument("--padding", type=int, default=40, help="padding characters per message")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of chatting before measuring")
    p.add_argument("--duration", type=float, default=10.0, help="measuring window, seconds")
    p.add_argument("--max-messages", type=int, default=2_000_000, help="stop measuring after this many")
    p.add_argument("--procs", type=int, default=1, help="load-generator processes (their CPU is summed)")
    p.add_argument("--smoke", action="store_true", help="a few seconds, few users")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--tag", default="lg0", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.smoke:
        args.users, args.warmup, args.duration = min(args.users, 20), 0.5, 2.0
    if args.users < 2 or args.users % 2:
        p.error("--users must be even and >= 2")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        res = run_load(args.target, args.users, args.window, args.padding, args.warmup, args.duration,
                       args.max_messages, args.tag)
        print(json.dumps(res))
        return 0
    server = None
    url = args.target
    if url is None:
        port = free_port()
        server = start_reference_server(port)
        url = f"ws://127.0.0.1:{port}/ws"
    try:
        if args.procs == 1:
            results = [run_load(url, args.users, args.window, args.padding, args.warmup, args.duration,
                                args.max_messages, "lg0")]
        else:
            per = max(2, (args.users // args.procs) // 2 * 2)
            procs = [
                subprocess.Popen(
                    [sys.executable, __file__, "--worker", "--target", url, "--users", str(per),
                     "--window", str(args.window), "--padding", str(args.padding), "--warmup", str(args.warmup),
                     "--duration", str(args.duration), "--max-messages", str(args.max_messages // args.procs),
                     "--tag", f"lg{k}"],
                    stdout=subprocess.PIPE, text=True,
                )
                for k in range(args.procs)
            ]
            results = [json.loads(p.communicate(timeout=args.warmup + args.duration + 90)[0].strip().splitlines()[-1])
                       for p in procs]
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
    received = sum(r["received"] for r in results)
    cpu_user = sum(r["cpu_user_s"] for r in results)
    cpu_sys = sum(r["cpu_sys_s"] for r in results)
    wall = max(r["wall_s"] for r in results)
    cpu = cpu_user + cpu_sys
    latency = LogHistogram.merged(r["latency"] for r in results).summary()
    print(f"target             {url}{' (reference server, started here)' if server else ''}")
    print(f"load generator     {args.procs} process(es), {sum(r['users'] for r in results)} users, window {args.window}")
    print(f"paired users       {sum(r['paired'] for r in results)}")
    print(f"measured           {wall:.2f} s wall, {received} messages relayed, {received / wall:.0f} msg/s")
    print(f"load-gen CPU       {cpu:.3f} s (user {cpu_user:.3f}, sys {cpu_sys:.3f}), {cpu / wall * 100:.0f}% of a core")
    print(f"relay latency ms   {latency}")
    print(f"checks             bad_order={sum(r['bad_order'] for r in results)} "
          f"cross_talk={sum(r['cross_talk'] for r in results)} errors={[e for r in results for e in r['errors']]}")
    value = int(received / cpu) if cpu > 0 else 0
    print(f"msgs_per_cpu_second={value}")
    return 0 if value > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
