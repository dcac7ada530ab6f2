"""Shared test helpers: the time unit, free ports, and servers started as subprocesses.

Test timeouts are multiples of CHATLOAD_TEST_TIME_UNIT (seconds, default 1.0), so a slow
machine raises one variable instead of flaking. Servers get ports from harness/ports.py
(random, below the ephemeral range, so a busy machine's outgoing connections leave them alone).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from harness import ports

ROOT = Path(__file__).resolve().parent.parent


def time_unit() -> float:
    return float(os.environ.get("CHATLOAD_TEST_TIME_UNIT", "1.0"))


def free_port(host: str = "127.0.0.1") -> int:
    """A free port for a server subprocess, random below the ephemeral range (harness/ports.py:
    outgoing connections of a busy machine can neither exhaust nor steal it)."""
    return ports.free_port(host)


def free_port_run(count: int, host: str = "127.0.0.1") -> int:
    """First of `count` consecutive free ports (a cluster's shared port and its workers' ports)."""
    return ports.free_port_run(count, host)


def require_binary(name: str) -> str:
    """Find a system binary; skip locally when missing, but fail under CI where .ci/run installs it."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (apt-get install {name}); .ci/run installs it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def wait_http(url: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:  # e.g. 503 while draining still proves it listens
            return json.loads(exc.read() or b"{}")
        except Exception as exc:  # noqa: BLE001 - any failure means not up yet
            last = exc
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout}s: {last}")


@contextlib.contextmanager
def python_server(args: list[str], health_url: str, env: dict | None = None) -> Iterator[subprocess.Popen]:
    """Start `python ARGS...` as a subprocess, wait for its health URL, and always stop it."""
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        try:
            wait_http(health_url, 15 * time_unit())
        except TimeoutError:
            proc.kill()
            out = proc.communicate()[0]
            raise RuntimeError(f"server {args} did not start:\n{out}") from None
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10 * time_unit())
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout:
            proc.stdout.close()


@contextlib.contextmanager
def reference_server(*extra: str, env: dict | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """The reference server on a free loopback port; yields (base http URL, process)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with python_server(
        ["-m", "reference_server", "--host", "127.0.0.1", "--port", str(port), *extra],
        f"{base}/healthz",
        env=env,
    ) as proc:
        yield base, proc
