"""`chatload grafana push --url URL --token T [RESULTS.json ...]`: dashboards and run annotations.

Uploads every dashboard of dashboards/ into one Grafana folder (created if missing,
dashboards overwritten, so pushing twice is harmless), then annotates each run given as a
results.json: a region from the run's start to its end, and one region or point per phase
listed in the results (`phases`: [{name, t_start, t_end}] in seconds since the start,
e.g. a flash crowd). Annotations carry the tags `chatload`, `run:<id>` and the scenario,
which the dashboards' annotation query shows.

Uses the grafana-client library (3.x: GrafanaApi.from_url, folder.create_folder,
dashboard.update_dashboard, annotations.add_annotation). Exit codes: 0 done; 2 usage error
(missing files, bad results); 4 Grafana refused or could not be reached.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any, Mapping

DASHBOARDS_DIR = Path(__file__).resolve().parent.parent.parent / "dashboards"
DEFAULT_FOLDER = "chatload"
DEFAULT_FOLDER_UID = "chatload"
EXIT_USAGE, EXIT_GRAFANA = 2, 4


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="grafana_command", metavar="ACTION")
    push = sub.add_parser("push", help="upload the dashboards and annotate runs",
                          description="Upload chatload's dashboards into a folder and annotate each run given.")
    push.add_argument("results", nargs="*", metavar="RESULTS.json", help="runs to annotate (start, end, phases)")
    push.add_argument("--url", required=True, help="Grafana base URL, e.g. http://127.0.0.1:3000")
    push.add_argument("--token", default=None, help="a service-account token (or use user:password in --url)")
    push.add_argument("--folder", default=DEFAULT_FOLDER, help=f"folder title (default {DEFAULT_FOLDER})")
    push.add_argument("--folder-uid", default=DEFAULT_FOLDER_UID, help=f"folder uid (default {DEFAULT_FOLDER_UID})")
    push.add_argument("--dashboards", metavar="DIR", default=None, help="folder of dashboard JSON (default: the bundled dashboards/)")
    push.add_argument("--no-dashboards", action="store_true", help="only annotate the runs")
    push.add_argument("--timeout", type=float, default=10.0, help="HTTP timeout in seconds (default 10)")


def _epoch_ms(v: Any) -> int | None:
    if isinstance(v, (int, float)):
        return int(v * 1000)
    if isinstance(v, str) and v:
        try:
            return int(dt.datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            return None
    return None


def run_annotations(results: Mapping[str, Any], run_id: str) -> list[dict[str, Any]]:
    """The annotations of one run: {time, time_end, tags, text} in epoch milliseconds (pure)."""
    run = results.get("run") or {}
    start = _epoch_ms(run.get("t_start")) or _epoch_ms(run.get("started"))
    if start is None:
        raise ValueError("results.run has neither t_start nor started: cannot place the run in time")
    elapsed = run.get("elapsed_s") or run.get("duration_s") or 0
    end = start + int(float(elapsed) * 1000)
    scenario = str(run.get("scenario") or "run")
    tags = ["chatload", f"run:{run_id}", f"scenario:{scenario}"]
    corr = results.get("correctness") or {}
    thr = results.get("throughput") or {}
    pair = results.get("pair_latency_ms") or {}
    text = (f"chatload run {run_id}: {scenario}, seed {run.get('seed')}, {run.get('users')} users, "
            f"{thr.get('pairs_per_s')} pairs/s, pair p99 {pair.get('p99')} ms, "
            f"violations {corr.get('violations_total', 0)}, stop: {run.get('stop_reason', 'completed')}")
    out = [{"time": start, "time_end": end, "tags": tags + ["run"], "text": text}]
    for ph in results.get("phases") or []:
        if not isinstance(ph, Mapping) or not isinstance(ph.get("t_start"), (int, float)):
            continue
        t0 = start + int(ph["t_start"] * 1000)
        t1 = start + int(ph["t_end"] * 1000) if isinstance(ph.get("t_end"), (int, float)) else t0
        name = str(ph.get("name") or "phase")
        out.append({"time": t0, "time_end": t1, "tags": tags + ["phase", f"phase:{name}"],
                    "text": f"{name} ({scenario}, run {run_id})"})
    return out


def load_dashboards(directory: Path) -> list[dict[str, Any]]:
    found = []
    for path in sorted(directory.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(doc, dict) and "panels" in doc and doc.get("uid"):
            found.append(doc)
    return found


def _ensure_folder(api: Any, title: str, uid: str) -> str:
    from grafana_client.client import GrafanaClientError

    try:
        folder = api.folder.create_folder(title, uid=uid)
    except GrafanaClientError as exc:
        if exc.status_code not in (409, 412):  # exists already (409 by uid or title; 412 in older versions)
            raise
        folder = api.folder.get_folder(uid)
    return str(folder.get("uid") or uid)


def push(args: argparse.Namespace) -> int:
    from grafana_client import GrafanaApi
    from grafana_client.client import GrafanaException

    runs = []
    for name in args.results:
        path = Path(name)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            runs.append((path, run_annotations(doc, path.resolve().parent.name)))
        except (OSError, ValueError) as exc:
            print(f"chatload grafana push: error: {path}: {exc}", file=sys.stderr)
            return EXIT_USAGE
    dashboards: list[dict[str, Any]] = []
    if not args.no_dashboards:
        directory = Path(args.dashboards) if args.dashboards else DASHBOARDS_DIR
        dashboards = load_dashboards(directory)
        if not dashboards:
            print(f"chatload grafana push: error: no dashboard JSON in {directory}", file=sys.stderr)
            return EXIT_USAGE

    api = GrafanaApi.from_url(args.url, credential=args.token, timeout=args.timeout)
    try:
        if dashboards:
            folder_uid = _ensure_folder(api, args.folder, args.folder_uid)
            for d in dashboards:
                body = dict(d)
                body.pop("id", None)
                res = api.dashboard.update_dashboard({"dashboard": body, "folderUid": folder_uid, "overwrite": True,
                                                      "message": "pushed by chatload grafana push"})
                print(f"dashboard {d['uid']}: {res.get('status', 'ok')} {res.get('url', '')}".rstrip())
        for path, notes in runs:
            for n in notes:
                api.annotations.add_annotation(time_from=n["time"], time_to=n["time_end"], tags=n["tags"], text=n["text"])
            print(f"annotated {path} ({len(notes)} annotation(s))")
    except GrafanaException as exc:
        print(f"chatload grafana push: Grafana refused (HTTP {exc.status_code}): {exc}", file=sys.stderr)
        return EXIT_GRAFANA
    except OSError as exc:  # requests' ConnectionError is an OSError
        print(f"chatload grafana push: cannot reach {args.url}: {exc}", file=sys.stderr)
        return EXIT_GRAFANA
    return 0


def run(args: argparse.Namespace) -> int:
    if getattr(args, "grafana_command", None) != "push":
        print("chatload grafana: give an action: push (see chatload grafana push --help)", file=sys.stderr)
        return EXIT_USAGE
    return push(args)
