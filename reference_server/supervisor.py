"""`--workers N`: the supervisor that runs one core owner and N worker processes, and replaces the dead.

    supervisor (this process: no sockets, only fork, waitpid and signals)
      |-- core owner   (cluster_core.py: the pairing core and the ban book; a Unix socket)
      |-- worker 0..N-1 (cluster_worker.py: accept on the shared port with SO_REUSEPORT)

`--workers 1` never gets here: it is the single-process server, unchanged. Children are
forked (no re-import, so a replacement is up in tens of milliseconds), each in its own
process group (a terminal's Ctrl-C reaches only the supervisor, which then drains the
workers in order) and each told by the kernel to exit if the supervisor dies.

SIGTERM or SIGINT: the workers drain (joins refused, chats go on for --drain-grace, then
1001), then the core owner stops, then the supervisor exits 0 within --drain-timeout + 2 s.
"""
from __future__ import annotations

import argparse
import ctypes
import logging
import os
import signal
import socket
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Callable

from .settings import Settings

log = logging.getLogger("reference_server.supervisor")

POLL = 0.05
CRASH_WINDOW = 1.0  # a child that dies this soon after starting counts toward a crash loop
CRASH_LOOP = 5  # this many quick deaths in a row of one child: give up


@dataclass
class Child:
    role: str  # "core" or "worker"
    slot: int
    generation: int
    started: float
    quick_deaths: int = 0


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def add_arguments(parser: argparse.ArgumentParser, default_workers: int) -> None:
    """--workers, and the undocumented per-worker test ports."""
    parser.add_argument(
        "--workers", type=int, default=default_workers,
        help="server processes accepting on the port (0: one per core; 1: a single process, no core owner) "
             f"(default: {default_workers})",
    )
    parser.add_argument("--worker-port-base", type=int, default=0, help=argparse.SUPPRESS)


def run_from_args(settings: Settings, args: argparse.Namespace) -> int:
    """Run the server as asked: one process, or a supervised cluster."""
    workers = args.workers if args.workers > 0 else cpu_count()
    if workers == 1 and not args.worker_port_base:
        from .app import run

        return run(settings)
    return run_cluster(settings, workers, args.worker_port_base)


def _die_with_parent(parent: int) -> None:
    """Ask Linux to SIGTERM this child when the supervisor dies (best effort elsewhere)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover
        pass
    if os.getppid() != parent:
        os._exit(0)


def _fork(target: Callable[[], int]) -> int:
    parent = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        os.setpgid(0, 0)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        _die_with_parent(parent)
        code = target()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - report and exit with an error status
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return 0  # pragma: no cover


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


class Supervisor:
    """Starts, watches and replaces the children; see the module docstring."""

    def __init__(self, settings: Settings, workers: int, port_base: int) -> None:
        from .cluster_core import core_address
        from . import cluster_worker  # noqa: F401 - imported once here, so forked children start at once

        self.settings = settings
        self.workers = workers
        self.port_base = port_base
        self.address = core_address(f"{os.getpid()}-{settings.port}")
        self.children: dict[int, Child] = {}
        self.generations: dict[tuple[str, int], int] = {}
        self.stopping = False
        self.signals = 0

    # ------------------------------------------------------------ children
    def spawn(self, role: str, slot: int, quick_deaths: int = 0) -> None:
        key = (role, slot)
        gen = self.generations.get(key, -1) + 1
        self.generations[key] = gen
        st, address = self.settings, self.address
        if role == "core":
            def target() -> int:
                from .cluster_core import serve_core
                from .cluster_worker import run_loop

                run_loop(serve_core(st, address, gen), st.gc_threshold)
                return 0
        else:
            own = self.port_base + slot if self.port_base else None

            def target() -> int:
                from .cluster_worker import worker_main

                return worker_main(st, slot, gen, address, own)
        pid = _fork(target)
        self.children[pid] = Child(role, slot, gen, time.monotonic(), quick_deaths)
        log.info("started %s %d (pid %d, generation %d)", role, slot, pid, gen)

    def reap(self) -> bool:
        """Collect dead children and replace them; False when one is in a crash loop."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return True
            if pid == 0:
                return True
            child = self.children.pop(pid, None)
            if child is None or self.stopping:
                continue
            quick = child.quick_deaths + 1 if time.monotonic() - child.started < CRASH_WINDOW else 0
            log.warning("%s %d (pid %d) died (%s); replacing it", child.role, child.slot, pid, _describe(status))
            if quick >= CRASH_LOOP:
                log.error("%s %d keeps dying at start: giving up", child.role, child.slot)
                return False
            self.spawn(child.role, child.slot, quick)

    # ------------------------------------------------------------ run
    def on_signal(self, signum: int, frame: object) -> None:
        self.signals += 1
        self.stopping = True  # the main loop starts the drain (shutdown)
        if self.signals >= 2:
            for pid, child in list(self.children.items()):
                if child.role == "worker":
                    _kill(pid, signal.SIGTERM)  # a second signal hurries the drain, as in one process

    def run(self) -> int:
        st = self.settings
        if not _port_free(st.host, st.port):
            log.error("cannot listen on %s:%d (in use without SO_REUSEPORT?)", st.host, st.port)
            return 2
        signal.signal(signal.SIGTERM, self.on_signal)
        signal.signal(signal.SIGINT, self.on_signal)
        self.spawn("core", 0)
        for slot in range(self.workers):
            self.spawn("worker", slot)
        log.info("reference server: %d workers on %s:%d, core owner over a Unix socket",
                 self.workers, st.host, st.port)
        healthy = True
        while not self.stopping:
            if not self.reap():
                healthy = False
                break
            time.sleep(POLL)
        self.shutdown()
        return 0 if healthy else 1

    def shutdown(self) -> None:
        """Workers drain first (cross-process chats still need the core owner), then the core owner stops."""
        self.stopping = True
        st = self.settings
        deadline = time.monotonic() + st.drain_timeout + 0.5
        for pid, child in list(self.children.items()):
            if child.role == "worker":
                _kill(pid, signal.SIGTERM)
        self._wait(lambda c: c.role == "worker", deadline)
        for pid, child in list(self.children.items()):
            if child.role == "core":
                _kill(pid, signal.SIGTERM)
        self._wait(lambda c: True, time.monotonic() + 1.0)

    def _wait(self, which: Callable[[Child], bool], deadline: float) -> None:
        while any(which(c) for c in self.children.values()):
            self.reap()
            if time.monotonic() >= deadline:
                for pid, child in list(self.children.items()):
                    if which(child):
                        _kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + 1.0
            time.sleep(0.02)


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


def run_cluster(settings: Settings, workers: int, port_base: int = 0) -> int:
    """Run the supervised multi-process server until SIGTERM/SIGINT; returns the exit status."""
    logging.basicConfig(
        level=getattr(logging, settings.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s",
    )
    if not 1 <= workers <= 255:
        log.error("--workers must be between 1 and 255")
        return 2
    return Supervisor(settings, workers, port_base).run()
