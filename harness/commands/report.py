"""`chatload report RESULTS.json [--out report.html]`: rebuild a run's self-contained report.

Exit codes: 0 written; 2 the results file is missing or not a results document.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", metavar="RESULTS.json", help="a results.json (or results.partial.json) written by chatload run")
    parser.add_argument("--out", metavar="FILE", default=None, help="where to write the report (default: report.html next to RESULTS.json)")


def run(args: argparse.Namespace) -> int:
    from harness.report import write_report

    src = Path(args.results)
    try:
        doc = json.loads(src.read_text(encoding="utf-8"))
    except OSError as exc:
        print(f"chatload report: error: cannot read {src}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"chatload report: error: {src} is not JSON: {exc}", file=sys.stderr)
        return 2
    if not isinstance(doc, dict) or "run" not in doc:
        print(f"chatload report: error: {src} is not a chatload results document (no 'run' key)", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else src.with_name("report.html")
    write_report(doc, out, source=str(src))
    print(f"chatload report: wrote {out}")
    return 0
