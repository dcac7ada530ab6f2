"""Joins per second of the pairing core, and its ratio to a naive clone-style matcher.

Prints one `name=value` line per figure. `--smoke` runs a few thousand joins only.
Targets (issue 2): >= 2,000,000 joins/s without interests, >= 500,000/s with interests.

The figures are measured twice, each in a fresh process: under the garbage-collector
policy the server runs with (reference_server/gc_policy.py: start-up objects frozen,
5,000 allocations between young collections), printed plain, and under CPython's
default collector settings, printed with a `default_gc.` prefix. The core itself does
not change between the two; the collector's full passes over every live user do.
"""
from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.core_workloads import WORKLOADS, joins_with_waiting_crowd, naive_with_waiting_crowd  # noqa: E402


def best_rate(make, n: int, repeats: int) -> float:
    """Best of `repeats` runs: the least disturbed by other processes on a noisy machine."""
    best = 0.0
    for _ in range(repeats):
        run = make(n)
        gc.collect()  # the previous repeat's cores are garbage: do not time their collection
        t0 = time.perf_counter()
        run()
        best = max(best, n / (time.perf_counter() - t0))
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for CI")
    parser.add_argument("-n", type=int, default=300_000, help="joins per workload")
    parser.add_argument("--gc", choices=("both", "server", "default"), default="both",
                        help="collector settings: the server's policy, CPython's defaults, or both (one process each)")
    args = parser.parse_args()
    if args.gc == "both":
        return both(sys.argv[1:])
    if args.gc == "server":
        from reference_server import gc_policy

        print(f"gc_thresholds={gc_policy.apply()}", flush=True)
    n = 3_000 if args.smoke else args.n
    repeats = 1 if args.smoke else 5
    for name, make in WORKLOADS.items():
        print(f"{name}_per_s={best_rate(make, n, repeats):.0f}", flush=True)
    m = 500 if args.smoke else 5_000
    core = best_rate(lambda k: joins_with_waiting_crowd(k, crowd=10_000), m, repeats)
    naive = best_rate(lambda k: naive_with_waiting_crowd(k, crowd=10_000), m, repeats)
    print(f"core_10k_waiting_per_s={core:.0f}")
    print(f"naive_10k_waiting_per_s={naive:.0f}")
    print(f"core_over_naive_ratio={core / naive:.1f}")
    return 0


def both(argv: list[str]) -> int:
    """Run each collector setting in its own process, so neither inherits the other's heap."""
    base = [sys.executable, __file__, *[a for a in argv if not a.startswith("--gc")]]
    for mode, prefix in (("server", ""), ("default", "default_gc.")):
        out = subprocess.run([*base, "--gc", mode], capture_output=True, text=True, check=False)
        if out.returncode:
            sys.stderr.write(out.stderr)
            return out.returncode
        for line in out.stdout.splitlines():
            print(prefix + line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
