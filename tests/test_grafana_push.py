"""`chatload grafana push` against a stand-in Grafana HTTP API.

Grafana itself cannot be installed on these machines (no package on the registries
reached here), so these tests run the real command (a subprocess, real HTTP on loopback,
the real grafana-client library) against a small HTTP server in the test that records
every request and answers as Grafana's HTTP API documents it
(https://grafana.com/docs/grafana/latest/developers/http_api/): POST /api/folders
-> 200 {id, uid, title} or 409 when the folder exists; GET /api/folders/:uid -> the folder;
POST /api/dashboards/db -> 200 {id, uid, url, status: "success", version};
POST /api/annotations -> 200 {message: "Annotation added", id}; 401 without a valid token.
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from harness.commands.grafana import run_annotations
from tests.support import ROOT, time_unit

TOKEN = "glsa_test_token"


class FakeGrafana:
    """Records requests; answers like Grafana's HTTP API."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.folders: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.annotations: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_a: Any) -> None:
                pass

            def _reply(self, code: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                outer.requests.append({"method": method, "path": self.path, "auth": self.headers.get("Authorization"),
                                       "body": body})
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self._reply(401, {"message": "Unauthorized"})
                code, answer = outer.answer(method, self.path, body)
                self._reply(code, answer)

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if method == "POST" and path == "/api/folders":
            uid = body.get("uid") or f"f{len(self.folders) + 1}"
            if uid in self.folders:
                return 409, {"message": "a folder with the same uid already exists"}
            self.folders[uid] = {"id": len(self.folders) + 1, "uid": uid, "title": body["title"], "version": 1}
            return 200, self.folders[uid]
        if method == "GET" and path.startswith("/api/folders/"):
            uid = path.rsplit("/", 1)[1]
            return (200, self.folders[uid]) if uid in self.folders else (404, {"message": "folder not found"})
        if method == "POST" and path == "/api/dashboards/db":
            d = body["dashboard"]
            if body.get("folderUid") not in self.folders:
                return 400, {"message": "folder not found"}
            old = self.dashboards.get(d["uid"])
            if old and not body.get("overwrite"):
                return 412, {"status": "version-mismatch", "message": "exists"}
            version = (old["version"] + 1) if old else 1
            self.dashboards[d["uid"]] = {"version": version, "body": body}
            return 200, {"id": len(self.dashboards), "uid": d["uid"], "url": f"/d/{d['uid']}/x", "status": "success",
                         "version": version, "slug": "x"}
        if method == "POST" and path == "/api/annotations":
            self.annotations.append(body)
            return 200, {"message": "Annotation added", "id": len(self.annotations)}
        return 404, {"message": "Not found"}

    def __enter__(self) -> "FakeGrafana":
        self.thread.start()
        return self

    def __exit__(self, *_a: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


def _results(tmp: Path, phases: list[dict[str, Any]] | None = None) -> Path:
    run_dir = tmp / "20250101-120000Z"
    run_dir.mkdir()
    doc = {"run": {"scenario": "flash_crowd", "seed": 7, "users": 40, "started": "2025-01-01T12:00:00Z",
                   "elapsed_s": 30.5, "stop_reason": "completed"},
           "throughput": {"pairs_per_s": 12.5}, "pair_latency_ms": {"p99": 42.0},
           "correctness": {"violations_total": 0}}
    if phases is not None:
        doc["phases"] = phases
    path = run_dir / "results.json"
    path.write_text(json.dumps(doc))
    return path


def _push(url: str, *args: str, token: str = TOKEN) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", "grafana", "push", "--url", url, "--token", token, *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=60 * time_unit())


def test_push_uploads_dashboards_into_a_folder_and_annotates_runs(tmp_path: Path) -> None:
    results = _results(tmp_path, phases=[{"name": "flash_crowd", "t_start": 5.0, "t_end": 20.0}])
    with FakeGrafana() as g:
        proc = _push(g.url, str(results))
        assert proc.returncode == 0, proc.stderr
        assert all(r["auth"] == f"Bearer {TOKEN}" for r in g.requests)
        assert g.folders == {"chatload": {"id": 1, "uid": "chatload", "title": "chatload", "version": 1}}
        assert set(g.dashboards) == {"chatload-run-overview", "chatload-reference-server"}
        for entry in g.dashboards.values():
            body = entry["body"]
            assert body["folderUid"] == "chatload" and body["overwrite"] is True
            assert "id" not in body["dashboard"] and body["dashboard"]["panels"]
        start = 1735732800000  # 2025-01-01T12:00:00Z
        run, phase = g.annotations
        assert (run["time"], run["timeEnd"]) == (start, start + 30500)
        assert {"chatload", "run", "run:20250101-120000Z", "scenario:flash_crowd"} <= set(run["tags"])
        assert "flash_crowd" in run["text"] and "pair p99 42.0 ms" in run["text"]
        assert (phase["time"], phase["timeEnd"]) == (start + 5000, start + 20000)
        assert "phase:flash_crowd" in phase["tags"]

        # Pushing again: the folder exists (409), is looked up, dashboards are overwritten.
        proc = _push(g.url, "--no-dashboards")
        assert proc.returncode == 0, proc.stderr
        proc = _push(g.url)
        assert proc.returncode == 0, proc.stderr
        assert ("GET", "/api/folders/chatload") in [(r["method"], r["path"]) for r in g.requests]
        assert all(e["version"] == 2 for e in g.dashboards.values())


def test_push_reports_a_refused_token_with_exit_4(tmp_path: Path) -> None:
    with FakeGrafana() as g:
        proc = _push(g.url, token="wrong")
        assert proc.returncode == 4
        assert "Grafana refused" in proc.stderr and "401" in proc.stderr
        assert not g.dashboards


def test_push_rejects_results_without_a_start_time(tmp_path: Path) -> None:
    bad = tmp_path / "results.json"
    bad.write_text(json.dumps({"run": {"scenario": "smoke"}}))
    with FakeGrafana() as g:
        proc = _push(g.url, str(bad))
        assert proc.returncode == 2 and "cannot place the run in time" in proc.stderr
        assert g.requests == []


def test_annotations_point_phases_and_defaults() -> None:
    notes = run_annotations({"run": {"t_start": 100.0, "elapsed_s": 10, "scenario": "s"},
                             "phases": [{"name": "burst", "t_start": 2.0}, {"bogus": 1}]}, "r1")
    assert [(n["time"], n["time_end"]) for n in notes] == [(100000, 110000), (102000, 102000)]
    with pytest.raises(ValueError):
        run_annotations({"run": {}}, "r")
