"""The multi-process reference server (--workers 2): pairing stays global across processes.

Clients reach one given worker through its own test port (--worker-port-base; the shared
port is spread by the kernel, SO_REUSEPORT, so it cannot pin a client). Every test uses
its own `lang` so its users sit in a pool nobody else joins.
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import signal
import time
import urllib.error
import urllib.request
from typing import Any, Awaitable, Callable, Iterator

import aiohttp
import pytest

from reference_server.client import ProtocolClient, connect
from tests.support import free_port_run, python_server, time_unit

U = time_unit()
T = 5 * U
REMATCH_BLOCK = 1.0 * U
_langs = (f"m{i:03d}" for i in itertools.count())
pytestmark = pytest.mark.timeout(90 * U)  # a few seconds each; a hang ends here, not at the global 300 s


# ---------------------------------------------------------------- helpers shared with test_server_faults
class Cluster:
    """A running `--workers N` server: the shared URL, one URL per worker, the supervisor process."""

    def __init__(self, port: int, port_base: int, workers: int, proc: Any) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.workers = [f"http://127.0.0.1:{port_base + k}" for k in range(workers)]
        self.proc = proc

    def status(self, k: int) -> dict:
        return get_json(self.workers[k] + "/cluster")

    def wait_ready(self, timeout: float = 15 * U, previous: dict[int, int] | None = None) -> dict[int, dict]:
        """Wait until every worker answers and is connected to the core owner (and, for the slots
        in `previous`, runs under a new pid); return their statuses."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                states = {k: self.status(k) for k in range(len(self.workers))}
                if all(s["core_connected"] for s in states.values()) and all(
                    states[k]["pid"] != pid for k, pid in (previous or {}).items()
                ):
                    return states
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("the workers did not all come up connected to the core owner")
            time.sleep(0.05)


def get_json(url: str) -> dict:
    try:
        with urllib.request.urlopen(url, timeout=5 * U) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())


@contextlib.contextmanager
def cluster(*extra: str, workers: int = 2) -> Iterator[Cluster]:
    """`python -m reference_server --workers N` with per-worker test ports, all workers ready."""
    base = free_port_run(workers + 1)
    port, port_base = base, base + 1
    with python_server(
        ["-m", "reference_server", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
         "--worker-port-base", str(port_base), *extra],
        f"http://127.0.0.1:{port}/healthz",
    ) as proc:
        c = Cluster(port, port_base, workers, proc)
        c.wait_ready()
        yield c


def run(body: Callable[[aiohttp.ClientSession], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with aiohttp.ClientSession() as http:
            return await asyncio.wait_for(body(http), 30 * U)

    return asyncio.run(main())


async def barrier(c: ProtocolClient, tag: str = "b") -> None:
    """Nothing is pending for `c`: a ping's pong is the very next frame."""
    await c.send("ping", t=tag)
    await c.expect("pong", T, t=tag)


async def join(c: ProtocolClient, expect: str, lang: str, **fields: Any) -> dict:
    await c.send("join", lang=lang, **fields)
    return await c.expect(expect, T)


# ---------------------------------------------------------------- the module's server
@pytest.fixture(scope="module")
def cl() -> Iterator[Cluster]:
    with cluster(
        "--interest-fallback", "60", "--rematch-block", str(REMATCH_BLOCK),
        "--trust-forwarded-for", "--report-threshold", "2",
    ) as c:
        yield c


def test_many_clients_land_on_both_processes_and_pair_in_one_fifo(cl: Cluster) -> None:
    n = 40

    async def body(http):
        lang = next(_langs)
        clients = [await connect(http, cl.base) for _ in range(n)]
        # joined one after the other in one pool: each newcomer meets the one waiting user
        partners: dict[int, int] = {}
        for i, c in enumerate(clients):
            if i % 2 == 0:
                await join(c, "waiting", lang)
            else:
                pb = await join(c, "paired", lang)
                pa = await clients[i - 1].expect("paired", T)
                assert pa["pair"] == pb["pair"] and pa["initiator"] != pb["initiator"]
                partners[i - 1], partners[i] = i, i - 1
        # every pair chats: each message reaches exactly its partner
        for i, c in enumerate(clients):
            await c.send("message", text=f"from {i}")
        for i, c in enumerate(clients):
            got = await c.expect("message", T)
            assert got["text"] == f"from {partners[i]}"
            await barrier(c)
        states = [cl.status(k) for k in range(2)]
        assert all(s["local_online"] > 0 for s in states), states  # the kernel spread them
        assert sum(s["local_online"] for s in states) == n
        crossed = sum(s["cross_process_relays"] for s in states)
        assert 0 < crossed <= n
        deadline = time.monotonic() + T
        while get_json(cl.base + "/healthz")["online"] != n:  # the global count, from the core owner
            assert time.monotonic() < deadline, get_json(cl.base + "/healthz")
            await asyncio.sleep(0.05)
        for c in clients:
            await c.close()

    run(body)


def test_pair_across_processes_relays_every_type_in_order(cl: Cluster) -> None:
    async def body(http):
        lang = next(_langs)
        a = await connect(http, cl.workers[0])
        await join(a, "waiting", lang, mode="video")
        b = await connect(http, cl.workers[1])
        pb = await join(b, "paired", lang, mode="video")
        pa = await a.expect("paired", T)
        assert pa["pair"] == pb["pair"] and pa["mode"] == pb["mode"] == "video"
        assert sorted([pa["initiator"], pb["initiator"]]) == [False, True]
        for i in range(30):
            await a.send("message", text=f"a{i}")
            await b.send("message", text=f"b{i}")
        await a.send("typing", active=True)
        await a.send("signal", data={"sdp": "offer", "n": 1})
        for i in range(30):
            assert (await b.expect("message", T))["text"] == f"a{i}"
            assert (await a.expect("message", T))["text"] == f"b{i}"
        await b.expect("typing", T, active=True)
        await b.expect("signal", T, data={"sdp": "offer", "n": 1})
        await barrier(a)
        await barrier(b)
        assert cl.status(0)["cross_process_relays"] >= 32

    run(body)


def test_fifo_with_interests_is_global(cl: Cluster) -> None:
    """Three users wait on alternating workers; newcomers take them oldest first, across processes."""

    async def body(http):
        lang = next(_langs)
        w0, w1 = cl.workers
        a = await connect(http, w0)
        await join(a, "waiting", lang, interests=["x"])
        b = await connect(http, w1)
        await join(b, "waiting", lang, interests=["y"])
        c = await connect(http, w0)
        await join(c, "waiting", lang, interests=["z"])
        d = await connect(http, w1)
        assert (await join(d, "paired", lang, interests=["z", "y", "x"]))["common"] == ["x"]
        await a.expect("paired", T)
        e = await connect(http, w0)
        assert (await join(e, "paired", lang, interests=["z", "y"]))["common"] == ["y"]
        await b.expect("paired", T)
        f = await connect(http, w1)
        assert (await join(f, "paired", lang, interests=["z"]))["common"] == ["z"]
        await c.expect("paired", T)

    run(body)


def test_no_rematch_after_next_across_processes_until_the_block_ends(cl: Cluster) -> None:
    async def body(http):
        lang = next(_langs)
        a = await connect(http, cl.workers[0])
        await join(a, "waiting", lang)
        b = await connect(http, cl.workers[1])
        await join(b, "paired", lang)
        await a.expect("paired", T)
        started = time.monotonic()
        await a.send("next")
        await a.expect("waiting", T)
        await b.expect("partner_left", T, reason="next")
        await join(b, "waiting", lang)  # the only other user is blocked for REMATCH_BLOCK
        pa = await a.expect("paired", REMATCH_BLOCK + T)  # the core owner's timer pairs them then
        pb = await b.expect("paired", T)
        assert pa["pair"] == pb["pair"]
        assert time.monotonic() - started >= REMATCH_BLOCK * 0.9

    run(body)


@pytest.mark.parametrize("reason", ["next", "leave", "disconnect", "report"])
def test_partner_left_reasons_across_processes(cl: Cluster, reason: str) -> None:
    async def body(http):
        lang = next(_langs)
        a = await connect(http, cl.workers[0], headers={"X-Forwarded-For": f"10.1.0.{len(reason)}"})
        await join(a, "waiting", lang)
        b = await connect(http, cl.workers[1], headers={"X-Forwarded-For": "10.2.0.1"})
        await join(b, "paired", lang)
        await a.expect("paired", T)
        await b.send("message", text="before")
        if reason == "disconnect":
            await b.close()
        else:
            await b.send(reason)
        assert (await a.expect("message", T))["text"] == "before"  # sent before: arrives before
        await a.expect("partner_left", T, reason=reason)
        await barrier(a)
        await a.send("message", text="too late")
        await a.expect("error", T, code="not_allowed")
        if reason == "next":
            await b.expect("waiting", T)
        elif reason != "disconnect":
            await barrier(b)  # leave and report get no answer; b is idle
            await b.send("message", text="x")
            await b.expect("error", T, code="not_allowed")

    run(body)


def test_ban_from_reports_on_another_process(cl: Cluster) -> None:
    """Reports filed on worker 1 ban an address whose sockets live on worker 0; its partners
    there and elsewhere get partner_left banned, and new sockets from it are refused."""

    async def body(http):
        victim = {"X-Forwarded-For": "10.9.9.9"}
        lang_a, lang_b = next(_langs), next(_langs)
        # the victim's first socket chats with a bystander on worker 1
        v1 = await connect(http, cl.workers[0], headers=victim)
        await join(v1, "waiting", lang_a)
        bystander = await connect(http, cl.workers[1], headers={"X-Forwarded-For": "10.9.0.1"})
        await join(bystander, "paired", lang_a)
        await v1.expect("paired", T)
        # its second socket is reported by two distinct addresses on worker 1
        v2 = await connect(http, cl.workers[0], headers=victim)
        for k, addr in enumerate(("10.9.0.2", "10.9.0.3")):
            await join(v2, "waiting", lang_b)
            r = await connect(http, cl.workers[1], headers={"X-Forwarded-For": addr})
            await join(r, "paired", lang_b)
            await v2.expect("paired", T)
            await r.send("report", reason="spam")
            await v2.expect("partner_left", T, reason="report")
        for v in (v1, v2):
            frame = await v.recv(T)
            while frame["type"] != "error":
                frame = await v.recv(T)
            assert frame["code"] == "banned"
            assert await v.close_code(T) == 1008
        await bystander.expect("partner_left", T, reason="banned")
        for w in cl.workers:  # every worker refuses the banned address
            late = await connect(http, w, headers=victim, expect_welcome=False)
            await late.expect("error", T, code="banned")
            assert await late.close_code(T) == 1008

    run(body)


def test_pending_frames_keep_their_order(cl: Cluster) -> None:
    """Frames sent right behind a join wait for the core owner's answer, then run in order."""

    async def body(http):
        lang = next(_langs)
        a = await connect(http, cl.workers[0])
        await join(a, "waiting", lang)
        b = await connect(http, cl.workers[1])
        await b.send("join", lang=lang)
        await b.send("message", text="right behind the join")
        await b.send("ping", t=1)
        await b.expect("paired", T)
        await b.expect("pong", T, t=1)
        await a.expect("paired", T)
        await a.expect("message", T, text="right behind the join")

    run(body)


def test_sigterm_drains_every_worker_then_exits() -> None:
    grace = 1.0 * U
    with cluster("--drain-grace", str(grace), "--drain-timeout", str(4 * U)) as c:
        async def body(http):
            lang = next(_langs)
            a = await connect(http, c.workers[0])
            await join(a, "waiting", lang)
            b = await connect(http, c.workers[1])
            await join(b, "paired", lang)
            await a.expect("paired", T)
            c.proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3 * U)
            await a.send("message", text="still relayed while draining")
            await b.expect("message", T, text="still relayed while draining")
            await a.send("next")
            await a.expect("error", T, code="draining")
            codes = await asyncio.gather(a.close_code(grace + T), b.close_code(grace + T))
            assert codes == [1001, 1001]

        run(body)
        assert c.proc.wait(8 * U) == 0


def test_workers_1_is_the_single_process_server() -> None:
    """The default of `python -m reference_server`: no supervisor, no core owner, no /cluster."""
    from pathlib import Path

    from tests.support import reference_server

    with reference_server() as (base, proc):
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert children == []
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(base + "/cluster", timeout=5 * U)
        assert err.value.code == 404
    with cluster(workers=2) as c:
        children = Path(f"/proc/{c.proc.pid}/task/{c.proc.pid}/children").read_text().split()
        assert len(children) == 3  # the core owner and two workers
        assert {c.status(k)["pid"] for k in range(2)} | {c.status(0)["core_pid"]} == set(map(int, children))


# ---------------------------------------------------------------- random traffic, checked from the clients
class _Actor:
    """One random user pinned to a worker; checks what it receives as it goes."""

    def __init__(self, client: ProtocolClient, worker: int, rng: Any, lang: str) -> None:
        self.c = client
        self.session = client.session
        self.worker = worker
        self.rng = rng
        self.lang = lang
        self.state = "idle"
        self.pair: str | None = None
        self.busy = False  # a join or next is waiting for its answer
        self.grace: set[str] = set()  # ended chats whose in-flight messages may still arrive
        self.barriers: dict[str, str] = {}  # ping tag -> chat ended by our leave/report
        self.seq = 0
        self.last_seq: dict[tuple[str, str], int] = {}
        self.paired: list[tuple[str, bool]] = []
        self.received: dict[str, set[str]] = {}  # pair -> senders
        self.violations: list[str] = []
        self.alive = True

    def on_frame(self, f: dict) -> None:
        kind = f["type"]
        if kind == "paired":
            self.grace.clear() if self.busy else None
            self.busy = False
            self.state, self.pair = "paired", f["pair"]
            self.paired.append((f["pair"], f["initiator"]))
        elif kind == "waiting":
            self.grace.clear() if self.busy else None
            self.busy = False
            self.state, self.pair = "waiting", None
        elif kind == "partner_left":
            if self.pair is None and not self.grace:  # (we may have left as the partner did)
                self.violations.append(f"partner_left while not paired: {f}")
            self.state, self.pair = "idle", None
        elif kind == "message":
            sender, pair, seq = f["text"].split("|")
            if pair != self.pair and pair not in self.grace:
                self.violations.append(f"message of {pair} arrived in state {self.state} pair {self.pair}")
            key = (sender, pair)
            if int(seq) != self.last_seq.get(key, int(seq) - 1) + 1:
                self.violations.append(f"out of order or lost: {key} {self.last_seq.get(key)} then {seq}")
            self.last_seq[key] = int(seq)
            self.received.setdefault(pair, set()).add(sender)
        elif kind == "pong":
            ended = self.barriers.pop(f["t"], None)
            if ended is not None:
                self.grace.discard(ended)
        elif kind == "error":
            if f["code"] != "not_allowed":  # races with a partner_left in flight are fine
                self.violations.append(f"error {f}")
            if self.busy:  # our next lost the race against the partner's leave
                self.busy = False
                self.grace.clear()
        elif kind != "typing":
            self.violations.append(f"unexpected {f}")

    async def read(self) -> None:
        try:
            while True:
                self.on_frame(await self.c.recv(10 * T))
        except Exception:  # noqa: BLE001 - our own close ends the reader
            self.alive = False

    async def act(self) -> str | None:
        """One random step; returns "gone" when this user disconnected."""
        r = self.rng.random()
        if self.busy:
            return None
        if self.state == "idle":
            self.busy = True
            await self.c.send("join", lang=self.lang)
        elif self.state == "waiting":
            if r < 0.1:
                await self._end("leave")
            elif r < 0.2:
                self.busy = True
                await self.c.send("next")
        elif self.state == "paired":
            if r < 0.6:
                self.seq += 1
                await self.c.send("message", text=f"{self.session}|{self.pair}|{self.seq}")
            elif r < 0.72:
                self.grace.add(self.pair)  # type: ignore[arg-type]
                self.busy = True
                await self.c.send("next")
            elif r < 0.8:
                await self._end("leave")
            elif r < 0.85:
                await self._end("report")
            elif r < 0.89:
                await self.c.close()
                return "gone"
            else:
                await self.c.send("typing", active=True)
        return None

    async def _end(self, kind: str) -> None:
        if self.pair is not None:
            self.grace.add(self.pair)
            tag = f"{kind}{self.rng.random()}"
            self.barriers[tag] = self.pair
        else:
            tag = "x"
        self.state, self.pair = "idle", None
        await self.c.send(kind)
        await self.c.send("ping", t=tag)


def test_random_traffic_across_processes_keeps_the_guarantees() -> None:
    with cluster("--rate-limit", "0", "--rematch-block", str(REMATCH_BLOCK)) as c:
        _random_traffic(c)


def _random_traffic(cl: Cluster) -> None:
    """Users on both workers join, chat, skip, leave, report and vanish at random in one pool;
    every client checks what it receives: one pair id shared by exactly two users, messages
    only from the current partner, in order, none after partner_left or after the answer to
    our own next (or the pong behind our own leave)."""
    import random

    users, steps = 24, 120
    before = cl.status(0)

    async def body(http):
        lang = next(_langs)
        rng = random.Random(7)
        actors: list[_Actor] = []
        readers = []

        async def spawn(worker: int) -> _Actor:
            a = _Actor(await connect(http, cl.workers[worker]), worker, random.Random(rng.random()), lang)
            actors.append(a)
            readers.append(asyncio.ensure_future(a.read()))
            return a

        live = [await spawn(k % 2) for k in range(users)]
        for _ in range(steps):
            for i, a in enumerate(live):
                if await a.act() == "gone":
                    live[i] = await spawn(a.worker)
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.5 * U)
        for a in live:
            await a.c.close()
        await asyncio.gather(*readers)
        return actors

    actors = run(body)
    violations = [v for a in actors for v in a.violations]
    assert violations == [], violations[:10]
    members: dict[str, list[tuple[str, bool]]] = {}
    for a in actors:
        for pair, initiator in a.paired:
            members.setdefault(pair, []).append((a.session, initiator))
    assert len(members) > users  # plenty of chats
    for pair, got in members.items():
        assert len(got) == 2 and got[0][0] != got[1][0], (pair, got)  # two distinct users
        assert sorted(i for _, i in got) == [False, True], (pair, got)
    for a in actors:
        for pair, senders in a.received.items():
            partner = {s for s, _ in members[pair]} - {a.session}
            assert senders <= partner, (pair, senders, partner)  # only the partner of that chat
    time.sleep(0.3)
    after = cl.status(0)
    assert after["pairs_across_workers"] > before["pairs_across_workers"]
    assert after["pairs_made"] - after["pairs_across_workers"] > before["pairs_made"] - before["pairs_across_workers"]
