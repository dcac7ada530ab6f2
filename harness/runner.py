"""Orchestration of one `chatload run`: target, Locust master and workers, results.

The runner never imports locust (gevent would monkey-patch it); Locust runs as separate
processes talking TCP on 127.0.0.1, exactly as remote workers would:

1. the target: the given ws:// URL, or the reference server started here on a free port
   with the scenario's SERVER_ARGS and any --server-arg (checked up front by
   `check_server_args`, so a bad flag is a usage error, not a server dying at start);
   either way it must accept a TCP connection and a WebSocket upgrade before any Locust
   process starts (else `BackendUnreachable`, exit code 3);
2. one `locust --master --headless` and N `locust --worker` processes, each in its own
   process group, with the CHATLOAD_* environment of the run contract;
3. a monitor loop, bounded in time, that prints progress from results.partial.json, stops
   the swarm early on Ctrl-C or when the backend has been unreachable for a while, and
   gives up on a swarm that overruns its duration by far;
4. shutdown in the order that keeps results (master first: it writes results.json on
   quit), then workers, then the embedded server; every child is reaped or killed;
5. results: results.json, or results.partial.json when the master could not finish,
   with `run.interrupted` and `run.stop_reason` added.
"""
from __future__ import annotations

import argparse
import base64
import ctypes
import datetime as dt
import json
import os
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NoReturn
from urllib.parse import urlsplit, urlunsplit

import orjson

from harness import prometheus
from harness.ports import free_port
from harness.scenario_files import Scenario
from harness.summary import format_progress

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PR_SET_PDEATHSIG = 1
POLL_S = 0.2
BACKEND_CHECK_EVERY_S = 2.0
WORKERS_CONNECT_MAX_WAIT_S = 60
MASTER_STOP_GRACE_S = 20.0
WORKER_STOP_GRACE_S = 8.0
WORKERS_GONE_GRACE_S = 10.0


class BackendUnreachable(Exception):
    """The target cannot be reached or does not speak WebSocket (exit code 3)."""


class Interrupted(Exception):
    """Ctrl-C arrived before the swarm started."""


# ---------------------------------------------------------------------------------------
# Child processes
# ---------------------------------------------------------------------------------------
def _die_with_parent() -> None:
    """Runs in the child before exec: ask Linux for SIGTERM if `chatload run` dies."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except Exception:  # noqa: BLE001 - best effort; process groups still clean up
        pass


class Child:
    """A subprocess in its own session and process group, its output in a log file.

    Its own group keeps a terminal Ctrl-C away from it (the runner decides the order of
    shutdown) and lets a stop signal reach anything it started.
    """

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path, cwd: Path | None = None):
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send_signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds; True once the child has exited."""
        try:
            self.proc.wait(timeout=max(0.0, timeout))
            return True
        except subprocess.TimeoutExpired:
            return False

    def stop(self, sig: int = signal.SIGTERM, grace: float = 5.0) -> None:
        """`sig` to the group, SIGKILL after `grace` seconds; always reaps the child."""
        if self.alive():
            self.send_signal(sig)
            if not self.wait(grace):
                self.send_signal(signal.SIGKILL)
                self.wait(5.0)
        self.send_signal(signal.SIGKILL)  # anything left in the group
        if not self._log.closed:
            self._log.close()

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment for children: ours, minus LOCUST_* settings, plus the project on the path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCUST_")}
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(PROJECT_ROOT) + (os.pathsep + path if path else "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


# ---------------------------------------------------------------------------------------
# The target
# ---------------------------------------------------------------------------------------
def normalize_target(url: str) -> str:
    """Accept ws(s):// or http(s):// URLs; an empty path means the protocol's /ws."""
    parts = urlsplit(url.strip())
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"bad --target {url!r}: expected a URL like ws://127.0.0.1:8080/ws")
    try:
        parts.port
    except ValueError:
        raise ValueError(f"bad --target {url!r}: bad port") from None
    path = parts.path or "/ws"
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


def _host_port(url: str) -> tuple[str, int, bool]:
    parts = urlsplit(url)
    secure = parts.scheme == "wss"
    return parts.hostname or "127.0.0.1", parts.port or (443 if secure else 80), secure


def tcp_reachable(url: str, timeout: float = 1.0) -> bool:
    host, port, _ = _host_port(url)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# Protocols whose adapters use the target URL itself as a WebSocket; the others (Socket.IO,
# Omegle-style HTTP) derive their own paths from it, so only an HTTP answer is checked.
WEBSOCKET_PROTOCOLS = ("reference", "jsonws")


def _read_head(sock: socket.socket, timeout: float) -> str:
    """The status line of an HTTP answer ('' if none came)."""
    head = b""
    deadline = time.monotonic() + timeout
    while b"\r\n\r\n" not in head and len(head) < 16384 and time.monotonic() < deadline:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    return head.split(b"\r\n", 1)[0].decode("latin-1", "replace").strip()


def probe_target(url: str, timeout: float = 5.0, websocket: bool = True) -> None:
    """TCP connect and a real WebSocket upgrade of `url` (or, with websocket=False, any HTTP
    answer from the host); raise BackendUnreachable otherwise."""
    host, port, secure = _host_port(url)
    parts = urlsplit(url)
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise BackendUnreachable(f"cannot connect to {host}:{port} ({url}): {exc.strerror or exc}") from None
    try:
        if secure:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        if not websocket:
            sock.sendall(f"GET / HTTP/1.1\r\nHost: {parts.netloc}\r\nUser-Agent: chatload-probe\r\nConnection: close\r\n\r\n".encode())
            status = _read_head(sock, timeout)
            if not status.startswith("HTTP/"):
                raise BackendUnreachable(f"{host}:{port} did not answer HTTP (got: {status or 'no answer'})")
            return
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {resource} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "User-Agent: chatload-probe\r\n\r\n"
        )
        sock.sendall(request.encode())
        status = _read_head(sock, timeout)
        if not status.startswith("HTTP/1.1 101"):
            raise BackendUnreachable(f"{url} did not accept a WebSocket upgrade (got: {status or 'no answer'})")
        # A polite masked close frame (code 1000), then hang up.
        mask = os.urandom(4)
        payload = (1000).to_bytes(2, "big")
        sock.sendall(bytes([0x88, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    except (OSError, ssl.SSLError) as exc:
        raise BackendUnreachable(f"probing {url} failed: {exc}") from None
    finally:
        sock.close()


#: Options of the embedded server that the runner sets itself (loopback, a free port).
RESERVED_SERVER_OPTIONS = ("host", "port")


class _RaisingParser(argparse.ArgumentParser):
    """An ArgumentParser that raises ValueError instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise ValueError(message)


def check_server_args(args: list[str]) -> None:
    """Parse `args` exactly as the reference server will, so a bad flag is a usage error
    (exit 2) before anything starts, not a server that dies at start (exit 3)."""
    from reference_server import settings as settings_mod
    from reference_server import supervisor

    parser = _RaisingParser(prog="reference_server", add_help=False)
    settings_mod.add_arguments(parser)
    supervisor.add_arguments(parser, default_workers=1)
    unset = object()  # argparse leaves attributes already on the namespace alone unless given
    try:
        ns = parser.parse_args(args, namespace=argparse.Namespace(**{k: unset for k in RESERVED_SERVER_OPTIONS}))
        given = [f"--{k}" for k in RESERVED_SERVER_OPTIONS if getattr(ns, k) is not unset]
        if given:
            raise ValueError(f"{' and '.join(given)}: chatload picks the embedded server's address and port "
                             "(127.0.0.1, a free one)")
        for k in RESERVED_SERVER_OPTIONS:
            setattr(ns, k, parser.get_default(k))
        settings_mod.from_args(ns)
    except ValueError as exc:
        raise ValueError(f"bad reference server flags {shlex.join(args)!r}: {exc}") from None


def server_argv(port: int, extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The embedded server's command line: loopback, `port`, then `extra` (the scenario's
    SERVER_ARGS, then --server-arg; for a repeated flag the last one wins)."""
    return [sys.executable, "-m", "reference_server", "--host", "127.0.0.1", "--port", str(port), *extra]


class EmbeddedServer:
    """The reference server on a free loopback port, for runs without --target."""

    def __init__(self, out_dir: Path, env: dict[str, str], extra_args: list[str] | tuple[str, ...] = ()):
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}/ws"
        self.health = f"http://127.0.0.1:{self.port}/healthz"
        self.argv = server_argv(self.port, extra_args)
        self.child = Child("server", self.argv, env, out_dir / "server.log", cwd=PROJECT_ROOT)

    def wait_ready(self, timeout: float, should_stop: Callable[[], bool]) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if should_stop():
                raise Interrupted()
            if not self.child.alive():
                raise BackendUnreachable(f"the reference server exited at start:\n{self.child.log_tail()}")
            try:
                with urllib.request.urlopen(self.health, timeout=1):
                    return
            except urllib.error.HTTPError:
                return  # it answers: it is up
            except OSError:
                time.sleep(0.1)
        raise BackendUnreachable(f"the reference server did not answer {self.health} within {timeout:.0f}s")

    def stop(self) -> None:
        self.child.stop(signal.SIGTERM, grace=5.0)


# ---------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------
@dataclass
class RunConfig:
    """Everything one run needs; built and validated by `chatload run`."""

    scenario: Scenario
    scenario_label: str
    target: str | None
    users: int
    spawn_rate: float
    duration_s: float
    workers: int
    seed: int
    out_dir: Path
    params: dict[str, Any] = field(default_factory=dict)
    unreachable_grace_s: float = 10.0
    progress_every_s: float = 3.0
    protocol: str = "reference"  # harness/adapters: reference, jsonws, socketio, omegle
    mapping: str | None = None  # the adapter's TOML mapping file (absolute path)
    prometheus: bool = False  # start a Prometheus for the run (harness/prometheus.py)
    prometheus_url: str | None = None  # or use this existing one (its scrape config is printed)
    # Extra flags for the embedded reference server (scenario SERVER_ARGS + --server-arg);
    # unused with a --target.
    server_args: list[str] = field(default_factory=list)


@dataclass
class RunOutcome:
    """What happened, for the exit code and the summary."""

    results: dict[str, Any] | None
    results_path: Path | None
    stop_reason: str  # completed | interrupted | backend_unreachable | timeout | workers_lost | swarm_failed
    target: str
    message: str = ""
    logs: list[Path] = field(default_factory=list)


class StopFlag:
    """Set by SIGINT/SIGTERM handlers; counts presses so a second one hurries."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> bool:
        return self.count > 0

    def press(self, *_: object) -> None:
        self.count += 1


def run_env(cfg: RunConfig, target: str, started: str) -> dict[str, str]:
    """The CHATLOAD_* environment of the run contract."""
    run_info = {
        "scenario": cfg.scenario_label,
        "target": target,
        "seed": cfg.seed,
        "users": cfg.users,
        "spawn_rate": cfg.spawn_rate,
        "duration_s": cfg.duration_s,
        "workers": cfg.workers,
        "started": started,
        "protocol": cfg.protocol,
        "mapping": cfg.mapping,
    }
    # What the embedded server was started with, for reproducing the run. (getattr: callers
    # such as tests/test_deploy_files.py pass a partial config.)
    if getattr(cfg, "target", None) is None:
        run_info["server_args"] = list(getattr(cfg, "server_args", []))
    return {
        "CHATLOAD_PROTOCOL": cfg.protocol,
        "CHATLOAD_MAPPING": cfg.mapping or "",
        "CHATLOAD_TARGET": target,
        "CHATLOAD_OUT": str(cfg.out_dir),
        "CHATLOAD_SEED": str(cfg.seed),
        "CHATLOAD_RUN": json.dumps(run_info),
        "CHATLOAD_SCENARIO_PARAMS": json.dumps(cfg.params),
    }


def locust_argv(cfg: RunConfig, target: str, master_port: int) -> tuple[list[str], list[str]]:
    """(master argv, worker argv)."""
    base = [sys.executable, "-m", "locust", "-f", str(cfg.scenario.path)]
    rate = f"{cfg.spawn_rate:g}"
    master = base + [
        "--headless", "--master",
        "--master-bind-host", "127.0.0.1", "--master-bind-port", str(master_port),
        "--expect-workers", str(cfg.workers),
        "--expect-workers-max-wait", str(WORKERS_CONNECT_MAX_WAIT_S),
        "-u", str(cfg.users), "-r", rate, "-t", f"{max(1, round(cfg.duration_s))}s",
        "--host", target, "--only-summary", "--loglevel", "INFO",
    ]  # fmt: skip
    worker = base + ["--worker", "--master-host", "127.0.0.1", "--master-port", str(master_port), "--loglevel", "INFO"]
    return master, worker


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write then rename, in the same layout as the plugin (orjson, 2-space indent)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS, default=str))
    os.replace(tmp, path)


def finalize_results(out_dir: Path, stop_reason: str) -> tuple[dict[str, Any] | None, Path | None]:
    """results.json (or the last results.partial.json) with the stop reason recorded."""
    final = out_dir / "results.json"
    results = read_json(final)
    source = "results.json"
    if results is None:
        results = read_json(out_dir / "results.partial.json")
        source = "results.partial.json"
    if results is None:
        return None, None
    run = results.setdefault("run", {})
    run["interrupted"] = stop_reason == "interrupted"
    run["stop_reason"] = stop_reason
    if source != "results.json":
        run["results_source"] = source
    write_json(final, results)
    return results, final


class Runner:
    """One run, start to finish; `execute()` never leaves a child process behind."""

    def __init__(self, cfg: RunConfig, echo: Callable[[str], None] = print):
        self.cfg = cfg
        self.echo = echo
        self.stop = StopFlag()
        self.server: EmbeddedServer | None = None
        self.master: Child | None = None
        self.workers: list[Child] = []
        self.monitoring: Any = None  # harness.prometheus.RunMonitoring

    # -- public --------------------------------------------------------------------
    def execute(self) -> RunOutcome:
        cfg = self.cfg
        cfg.out_dir.mkdir(parents=True, exist_ok=True)
        for stale in ("results.json", "results.partial.json"):  # never report a previous run's
            (cfg.out_dir / stale).unlink(missing_ok=True)
        old = {s: signal.signal(s, self.stop.press) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            return self._execute()
        finally:
            self._cleanup()
            for sig, handler in old.items():
                signal.signal(sig, handler)

    # -- steps ---------------------------------------------------------------------
    def _execute(self) -> RunOutcome:
        cfg = self.cfg
        env = child_env({"CHATLOAD_OUT": str(cfg.out_dir)})
        if cfg.target is None:
            flags = f" with {shlex.join(cfg.server_args)}" if cfg.server_args else ""
            self.echo(f"chatload: starting the reference server on 127.0.0.1{flags}")
            try:
                self.server = EmbeddedServer(cfg.out_dir, env, cfg.server_args)
                self.server.wait_ready(30.0, self.stop)
            except Interrupted:
                return RunOutcome(None, None, "interrupted", "", "interrupted before the swarm started")
            target = self.server.url
        else:
            target = cfg.target
        probe_target(target, websocket=cfg.protocol in WEBSOCKET_PROTOCOLS)  # raises BackendUnreachable
        if self.stop():
            return RunOutcome(None, None, "interrupted", target, "interrupted before the swarm started")

        started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
        env = child_env(run_env(cfg, target, started))
        self.monitoring = prometheus.setup_for_run(
            start=cfg.prometheus, url=cfg.prometheus_url, out_dir=cfg.out_dir, duration_s=cfg.duration_s,
            target_ws=target, server_port=self.server.port if self.server else None, env=env, echo=self.echo,
        )  # fmt: skip
        master_port = free_port()
        master_argv, worker_argv = locust_argv(cfg, target, master_port)
        self.echo(
            f"chatload: {cfg.scenario_label}: {cfg.users} users (spawn rate {cfg.spawn_rate:g}/s) for "
            f"{cfg.duration_s:g}s, {cfg.workers} worker(s), seed {cfg.seed}, against {target}"
        )
        self.echo(f"chatload: output in {cfg.out_dir}")
        self.master = Child("master", master_argv, env, cfg.out_dir / "locust-master.log", cwd=PROJECT_ROOT)
        for i in range(cfg.workers):
            log = cfg.out_dir / f"locust-worker-{i}.log"
            self.workers.append(Child(f"worker-{i}", worker_argv, env, log, cwd=PROJECT_ROOT))

        stop_reason = self._monitor(target)
        self._stop_swarm(stop_reason)
        results, path = finalize_results(cfg.out_dir, stop_reason)
        logs = [c.log_path for c in [self.master, *self.workers]]
        if self.server:
            logs.append(self.server.child.log_path)
        message = ""
        if results is None:
            if stop_reason == "completed":
                stop_reason = "swarm_failed"
            rc = self.master.proc.returncode
            how = f"killed by signal {-rc}" if rc is not None and rc < 0 else f"exit code {rc}"
            tail = self.master.log_tail() or "(the log is empty)"
            message = f"the Locust master wrote no results ({how}); its log ends with:\n{tail}"
        return RunOutcome(results, path, stop_reason, target, message, logs)

    def _monitor(self, target: str) -> str:
        """Wait for the master to finish; return why the swarm ended."""
        cfg = self.cfg
        assert self.master is not None
        start = time.monotonic()
        # Workers connect (bounded by Locust's max wait), the run, then its own stop.
        hard_deadline = start + WORKERS_CONNECT_MAX_WAIT_S + cfg.duration_s + MASTER_STOP_GRACE_S + 30
        next_progress = start + cfg.progress_every_s
        next_check = start + BACKEND_CHECK_EVERY_S
        unreachable_since: float | None = None
        workers_gone_since: float | None = None
        partial = cfg.out_dir / "results.partial.json"
        while True:
            now = time.monotonic()
            if not self.master.alive():
                return "completed"
            if self.workers and not any(w.alive() for w in self.workers):
                # At a normal end the workers quit just before the master: give it time.
                workers_gone_since = workers_gone_since or now
                if now - workers_gone_since >= WORKERS_GONE_GRACE_S:
                    self.echo("chatload: every Locust worker has exited; stopping")
                    for w in self.workers:
                        self.echo(f"chatload: {w.name} log ends with:\n{w.log_tail(5)}")
                    return "workers_lost"
            if self.stop():
                self.echo("chatload: stopping (Ctrl-C again to kill at once)")
                return "interrupted"
            if now > hard_deadline:
                self.echo("chatload: the swarm overran its duration by far; stopping it")
                return "timeout"
            if now >= next_check:
                next_check = now + BACKEND_CHECK_EVERY_S
                up = tcp_reachable(target) and (self.server is None or self.server.child.alive())
                if up:
                    unreachable_since = None
                elif unreachable_since is None:
                    unreachable_since = now
                    self.echo("chatload: the backend is not answering")
                elif now - unreachable_since >= cfg.unreachable_grace_s:
                    self.echo(f"chatload: the backend has been unreachable for {cfg.unreachable_grace_s:g}s; stopping")
                    return "backend_unreachable"
            if now >= next_progress:
                next_progress = now + cfg.progress_every_s
                self.echo(format_progress(read_json(partial), now - start, cfg.duration_s))
            time.sleep(POLL_S)

    def _stop_swarm(self, stop_reason: str) -> None:
        """Master first (it writes results.json when it quits), then the workers."""
        assert self.master is not None
        if self.master.alive():
            self.master.send_signal(signal.SIGTERM)
            self._wait_or_hurry([self.master], MASTER_STOP_GRACE_S)
        self.master.stop(signal.SIGKILL, grace=0)
        # A master that quit normally told its workers to quit too.
        self._wait_or_hurry(self.workers, WORKER_STOP_GRACE_S if stop_reason == "completed" else 3.0)
        for w in self.workers:
            w.stop(signal.SIGTERM, grace=3.0)

    def _wait_or_hurry(self, children: list[Child], timeout: float) -> None:
        """Wait for `children` to exit, at most `timeout` s; a further Ctrl-C cuts it short."""
        presses = self.stop.count
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(c.alive() for c in children):
            if self.stop.count > presses:
                return
            time.sleep(POLL_S)

    def _cleanup(self) -> None:
        for child in [*( [self.master] if self.master else []), *self.workers]:
            child.stop(signal.SIGTERM, grace=2.0)
        if self.server is not None:
            self.server.stop()
        if self.monitoring is not None:
            self.monitoring.stop()  # after the master: its last scrape is in
