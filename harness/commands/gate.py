"""`chatload gate RESULTS.json --thresholds gates.toml [--baseline BASE.json] [--junit FILE]`.

Exit codes for CI: 0 every check passed (or was skipped), 1 a check failed, 2 usage
error (unreadable results, bad thresholds or baseline file).
"""
from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", metavar="RESULTS.json", help="results file written by `chatload run`")
    parser.add_argument("--thresholds", "-t", metavar="GATES.toml", default="gates.toml",
                        help="checks to apply (default: gates.toml)")
    parser.add_argument("--baseline", "-b", metavar="BASE.json", default=None,
                        help="baseline from `chatload baseline save` (or a results file) for relative checks")
    parser.add_argument("--junit", metavar="FILE", default=None, help="also write JUnit XML here")
    parser.add_argument("--verbose", "-v", action="store_true", help="show the detail of every check")


def run(args: argparse.Namespace) -> int:
    from harness.gate import GateError, run_gate
    from harness.gate.baseline import read_results
    from harness.gate.evaluate import all_passed

    try:
        results = read_results(args.results)
        outcomes, table = run_gate(results, args.thresholds, args.baseline, args.junit, verbose=args.verbose)
    except GateError as exc:
        print(f"chatload gate: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. the JUnit path is not writable
        print(f"chatload gate: {exc}", file=sys.stderr)
        return 2
    print(table)
    return 0 if all_passed(outcomes) else 1
