"""The C simulation kernel against the Python engine, and a whole day with the kernel.

    python benchmarks/simulate_kernel.py             # 15 peak minutes both ways, then the day
    python benchmarks/simulate_kernel.py --hours 0   # the comparison only
    python benchmarks/simulate_kernel.py --smoke     # a tiny plan, for CI

Prints `name=value` lines: events per second of each engine on the same plan (a window
of 3 million daily users at the peak hour, 02:00 UTC) and their ratio, also without the
time both spend in the chat-length sampler (numpy, the same draws in both); then the full
day (`--hours 24`) with the kernel: plan building and simulation wall times (simulation
only, no fairness analysis), the sampler's share, events per second and the process's peak
RSS. Target: the day's simulation in 30 s or less, one process.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

# numpy's BLAS threads spin on the second core after a BLAS call; the simulation uses none,
# and the kernel's page-faulting helper thread wants that core.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.population import PopulationModel  # noqa: E402
from harness.simulate import make_matcher, simulate  # noqa: E402
from harness.simulate import kernel  # noqa: E402


class TimedSampler:
    """The model's chat-length sampler, timed (both engines call it for the same blocks)."""

    def __init__(self, model: PopulationModel) -> None:
        self.model, self.seconds = model, 0.0

    def __call__(self, ca, cb, rng, size):
        t0 = time.perf_counter()
        try:
            return self.model.chat_length_s(ca, cb, rng, size)
        finally:
            self.seconds += time.perf_counter() - t0


def _run(model: PopulationModel, plan, hours: float, engine: str, seed: int):
    sampler = TimedSampler(model)
    t0 = time.perf_counter()
    sim = simulate(plan, make_matcher(), sampler, seed=seed, horizon_s=hours * 3600,
                   mode_names=model.MODES, class_names=model.CLASSES, engine=engine)
    return sim, time.perf_counter() - t0, sampler.seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dau", type=int, default=3_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--start-hour", type=float, default=2.0, help="start of the compared window (UTC hour)")
    ap.add_argument("--window-hours", type=float, default=0.25, help="length of the compared window")
    ap.add_argument("--hours", type=float, default=24.0, help="the kernel-only run from 00:00 (0: skip it)")
    ap.add_argument("--smoke", action="store_true", help="3 simulated minutes of 30,000 daily users, no day")
    args = ap.parse_args(argv)
    if args.smoke:
        args.dau, args.window_hours, args.hours = 30_000, 0.05, 0.0
    if not kernel.usable(make_matcher()):
        print(f"kernel_unavailable={kernel.unusable_reason(make_matcher())!r}")
        return 1
    model = PopulationModel(dau=args.dau)
    plan = model.build(seed=args.seed, start_hour=args.start_hour, hours=args.window_hours)
    fast, t_fast, s_fast = _run(model, plan, args.window_hours, "kernel", args.seed)
    slow, t_slow, s_slow = _run(model, plan, args.window_hours, "python", args.seed)
    same = (fast.events, fast.pairings, fast.tickets.n) == (slow.events, slow.pairings, slow.tickets.n)
    print(f"window_visits={plan.n} window_events={fast.events} window_pairings={fast.pairings} same_counts={same}")
    print(f"kernel_seconds={t_fast:.3f} kernel_sampler_seconds={s_fast:.3f} kernel_events_per_s={fast.events / t_fast:.0f}")
    print(f"python_seconds={t_slow:.3f} python_sampler_seconds={s_slow:.3f} python_events_per_s={slow.events / t_slow:.0f}")
    print(f"kernel_speedup={t_slow / t_fast:.1f} "
          f"kernel_speedup_without_sampler={(t_slow - s_slow) / max(t_fast - s_fast, 1e-9):.1f}")
    if args.hours > 0:
        del fast, slow, plan
        t0 = time.perf_counter()
        day = model.build(seed=args.seed, start_hour=0.0, hours=args.hours)
        t_plan = time.perf_counter() - t0
        sim, t_sim, s_sim = _run(model, day, args.hours, "kernel", args.seed)
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        print(f"day_hours={args.hours} day_visits={sim.visits} day_events={sim.events} day_pairings={sim.pairings} "
              f"day_tickets={sim.tickets.n}")
        print(f"day_plan_seconds={t_plan:.2f} day_simulate_seconds={t_sim:.2f} day_sampler_seconds={s_sim:.2f} "
              f"day_events_per_s={sim.events / t_sim:.0f}")
        print(f"peak_rss_mb={rss_mb:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
