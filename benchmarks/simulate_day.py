"""A whole day of 3 million daily users through the reference core, in-process.

    python benchmarks/simulate_day.py                 # the full day (target: under 60 s)
    python benchmarks/simulate_day.py --hours 1 --start-hour 2   # the peak hour only
    python benchmarks/simulate_day.py --smoke         # a few simulated minutes, for CI

Prints `simulate_day_seconds=X` (plan + simulation + fairness analysis, wall clock, pools
spread over one process per CPU as `chatload simulate` does) for a
24-hour run; a shorter window prints its own time and `simulate_day_seconds_extrapolated`,
its time scaled by the share of the day's visits it holds (labelled as such, not measured).
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.population import PopulationModel  # noqa: E402
from harness.simulate import kernel, make_matcher, shard  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dau", type=int, default=3_000_000)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--start-hour", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=None, help="processes (default: one per CPU)")
    ap.add_argument("--smoke", action="store_true", help="3 simulated minutes of 30,000 daily users")
    ap.add_argument("--allow-python", action="store_true", help="run even when the C kernel is not built")
    args = ap.parse_args(argv)
    if args.smoke:
        args.dau, args.hours = 30_000, 0.05
    why = kernel.unusable_reason(make_matcher())
    print(f"engine={'kernel' if why is None else 'python'}")
    if why is not None and not args.smoke and not args.allow_python:
        print(f"simulate_day: the C kernel cannot run ({why}); the Python engine would need hours and more "
              f"memory than this machine has for a day. pip install -e . builds the kernel "
              f"(--allow-python runs anyway).", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    model = PopulationModel(dau=args.dau)
    plan = model.build(seed=args.seed, start_hour=args.start_hour, hours=args.hours)
    t_plan = time.perf_counter() - t0
    sim = shard.run(plan, model.chat_length_s, seed=args.seed, horizon_s=args.hours * 3600, mode_names=model.MODES,
                    class_names=model.CLASSES, jobs=args.jobs)
    total = time.perf_counter() - t0
    fair = sim.fairness
    peak_rss_gb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1e6
    print(f"visits={sim.visits} pairings={sim.pairings} tickets={sim.tickets} events={sim.events} "
          f"processes={sim.jobs}")
    print(f"plan_seconds={t_plan:.2f} simulate_and_analyse_seconds={total - t_plan:.2f} "
          f"peak_rss_gb_per_process={peak_rss_gb:.2f}")
    print(f"fifo_inversion_rate={fair['fifo_inversion_rate']} starved={fair['starved']} "
          f"wait_p99_ms={fair['wait_ms']['p99']}")
    if args.hours >= 24.0 and not args.smoke:
        print(f"simulate_day_seconds={total:.2f}")
    else:
        share = plan.n / max(model.curve(0.0).expected_count(0.0, 86_400.0), 1.0)
        print(f"simulate_window_hours={args.hours} simulate_window_seconds={total:.2f}")
        if share > 0 and not args.smoke:
            print(f"simulate_day_seconds_extrapolated={total / share:.1f} (window holds {share:.1%} of the day's visits)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
