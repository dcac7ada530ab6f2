"""A user killed during a graceful Socket.IO close dies at once (it used to live on).

websocket-client's close() waits for the server's close frame and swallows every
exception with a bare except, GreenletExit included. Locust stops a run by killing each
user's greenlet; a user killed while closing lived on and held its worker until the
runner's SIGTERM, about 10 s later. The adapter now closes in a greenlet of its own.

Real parts: the python-socketio clone server, and the adapter under gevent's monkey
patching in a subprocess, as in a Locust worker. The server is paused (SIGSTOP) so the
close handshake cannot finish while the closing user is killed.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

from tests.clone_servers.harness_run import MAPPINGS
from tests.support import ROOT, free_port, python_server, time_unit

PROBE = textwrap.dedent("""
    from gevent import monkey
    monkey.patch_all()
    import json, os, signal, sys, time
    import gevent
    from harness import adapters

    class Sink:
        def on_events(self, events, now_ns): pass
        def on_lost(self, exc): pass

    port, mapping, server_pid = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    adapter = adapters.load("socketio", mapping).make()
    adapter.connect(f"ws://127.0.0.1:{port}/socket.io/", 5.0, Sink())
    os.kill(server_pid, signal.SIGSTOP)          # no close frame will come back
    try:
        user = gevent.spawn(adapter.close, True)
        gevent.sleep(0.3)                        # the user is now waiting in the close
        t0 = time.monotonic()
        user.kill(block=True, timeout=10)
        print(json.dumps({"dead": user.dead, "killed": isinstance(user.value, gevent.GreenletExit),
                          "seconds": time.monotonic() - t0}))
    finally:
        os.kill(server_pid, signal.SIGCONT)
""")


def test_a_user_killed_while_closing_gracefully_dies_at_once():
    port = free_port()
    with python_server(["-m", "tests.clone_servers.socketio_server", "--port", str(port)],
                       f"http://127.0.0.1:{port}/healthz") as server:
        out = subprocess.run([sys.executable, "-c", PROBE, str(port), str(MAPPINGS / "socketio-clone.toml"),
                              str(server.pid)], cwd=ROOT, capture_output=True, text=True, timeout=60 * time_unit(),
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
        os.kill(server.pid, signal.SIGCONT)     # whatever the probe did
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["dead"] and r["killed"], r          # the kill reached the user: not swallowed
    assert r["seconds"] < 1.0 * time_unit(), r
