"""`chatload baseline save RESULTS.json [MORE.json ...] [--out BASE.json]` and
`chatload baseline show BASE.json`.

Several results files (repeated runs of the same unchanged backend) make a baseline
whose run-to-run spread the gate takes into account. Exit 0 ok, 2 usage error.
"""
from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    save = sub.add_parser("save", help="store results (one or several repeated runs) as a baseline")
    save.add_argument("results", nargs="+", metavar="RESULTS.json")
    save.add_argument("--out", "-o", default="baseline.json", metavar="BASE.json",
                      help="where to write the baseline (default: baseline.json)")
    show = sub.add_parser("show", help="print a baseline's environment and key figures")
    show.add_argument("baseline", metavar="BASE.json")


def _show(path: str) -> int:
    from harness.gate.baseline import load_baseline

    base = load_baseline(path)
    print(f"baseline {path}: {len(base.runs)} run(s) from {', '.join(base.sources) or '?'}")
    for key, value in base.environment.items():
        print(f"  {key}: {value}")
    for i, run in enumerate(base.runs, 1):
        pair = run.get("pair_latency_ms") or {}
        viol = (run.get("correctness") or {}).get("violations_total")
        print(f"  run {i}: pair p50 {pair.get('p50')} p99 {pair.get('p99')} (n={pair.get('count')}),"
              f" violations {viol}")
    return 0


def run(args: argparse.Namespace) -> int:
    from harness.gate.baseline import BaselineError, save_baseline

    try:
        if args.action == "save":
            data = save_baseline(args.results, args.out)
            env = data["environment"]
            print(json.dumps({"baseline": args.out, "runs": len(data["runs"]), "environment": env}, indent=1))
            return 0
        if args.action == "show":
            return _show(args.baseline)
    except (BaselineError, OSError) as exc:
        print(f"chatload baseline: {exc}", file=sys.stderr)
        return 2
    print("chatload baseline: choose an action: save or show", file=sys.stderr)
    return 2
