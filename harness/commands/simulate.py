"""`chatload simulate`: a day of the population model through a matcher, in-process.

    chatload simulate --dau 300000 --hours 1 --seed 1 --out runs/sim1
    chatload simulate --matcher mypkg.matcher:MyMatcher --params sim.toml --out runs/mine

Writes OUT/results.json (run, pair_latency_ms in simulated time, throughput, users,
fairness) and prints a short summary; a progress bar goes to stderr.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

from harness.fairness import FairnessParams


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dau", type=int, default=None, help="daily users (visits a day); default: the population model's")
    p.add_argument("--hours", type=float, default=24.0, help="simulated hours (default 24)")
    p.add_argument("--start-hour", type=float, default=0.0, help="UTC hour the simulation starts at (default 0)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", required=True, help="output directory (results.json)")
    p.add_argument("--matcher", default=None, help="module:Class implementing the matcher interface "
                   "(default: the reference pairing core)")
    p.add_argument("--params", default=None, help="TOML file: [population] overrides, [fairness] settings, "
                   "[matcher] interest_fallback/rematch_block")
    p.add_argument("--jobs", type=int, default=None,
                   help="processes to spread the pools over (default: one per CPU; a matcher that does not "
                   "declare pools_independent always runs in one)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


class Progress:
    """A one-line progress bar per stage on stderr (simulating, then analysing), redrawn
    only when the percentage changes. Takes shard.run's values: [0, 1) simulating,
    1 + the fraction analysed, 2 at the end."""

    STAGES = ("simulating", "analysing")

    def __init__(self, enabled: bool, width: int = 30) -> None:
        self.enabled, self.width = enabled, width
        self.last: tuple[int, int] = (0, -1)
        self.t0 = time.monotonic()

    def _draw(self, stage: int, frac: float) -> None:
        pct = int(frac * 100)
        if (stage, pct) == self.last:
            return
        self.last = (stage, pct)
        done = int(self.width * frac)
        sys.stderr.write(f"\r{self.STAGES[stage]:<10} [{'#' * done}{'.' * (self.width - done)}] {pct:3d}% "
                         f"{time.monotonic() - self.t0:6.1f}s")
        if pct >= 100:
            sys.stderr.write("\n")
        sys.stderr.flush()

    def __call__(self, x: float) -> None:
        if not self.enabled:
            return
        stage = 0 if x < 1.0 else 1
        if stage == 1 and self.last[0] == 0:
            self._draw(0, 1.0)                    # close the simulating line at 100%
        self._draw(stage, min(max(x - stage, 0.0), 1.0))


def _read_params(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    unknown = set(data) - {"population", "fairness", "matcher"}
    if unknown:
        raise ValueError(f"{path}: unknown table(s) {', '.join(sorted(unknown))}; known: population, fairness, matcher")
    return data


def run(args: argparse.Namespace) -> int:
    from harness.population import ParamError, PopulationModel
    from harness.simulate import budget, kernel, make_matcher, shard
    from harness.simulate.results import build_results

    try:
        cfg = _read_params(args.params)
        overrides = dict(cfg.get("population", {}))
        if args.dau is not None:
            overrides["dau"] = args.dau
        model = PopulationModel(**overrides)
        mcfg = cfg.get("matcher", {})
        fb = float(mcfg.get("interest_fallback", model.params.interest_fallback_s))
        block = float(mcfg.get("rematch_block", 10.0))
        fparams = FairnessParams.from_mapping({"interest_fallback_s": fb, "rematch_block_s": block,
                                               **cfg.get("fairness", {})})
        matcher = make_matcher(args.matcher, interest_fallback=fb, rematch_block=block)  # fail here, not in a child
        if not args.hours > 0:
            raise ValueError("--hours must be positive")
        if args.jobs is not None and args.jobs < 1:
            raise ValueError("--jobs must be at least 1")
    except (ParamError, ValueError, TypeError, ImportError, AttributeError, OSError, tomllib.TOMLDecodeError) as exc:
        print(f"chatload simulate: {exc}", file=sys.stderr)
        return 2
    why_python = kernel.unusable_reason(matcher)
    if why_python is not None:   # worth knowing before a long wait: the kernel is 20-50x faster
        print(f"chatload simulate: the Python engine runs ({why_python}): about 270,000 events/s, "
              f"so a day of 3M daily users takes hours; a window (--hours 1) or a smaller --dau is quicker",
              file=sys.stderr)
    t0 = time.monotonic()
    plan = model.build(seed=args.seed, start_hour=args.start_hour, hours=args.hours)
    too_big = budget.warning(plan)
    if too_big:
        print(f"chatload simulate: {too_big}", file=sys.stderr)
    try:
        sim = shard.run(plan, model.chat_length_s, matcher=args.matcher, interest_fallback=fb, rematch_block=block,
                        seed=args.seed, horizon_s=args.hours * 3600.0, mode_names=model.MODES,
                        class_names=model.CLASSES, params=fparams, jobs=args.jobs,
                        progress=Progress(not args.quiet))
    except shard.SimulationError as exc:
        print(f"\nchatload simulate: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nchatload simulate: interrupted; a simulation has no partial results, nothing written",
              file=sys.stderr)
        return 130
    results = build_results(sim, matcher=args.matcher or "reference_server.core:PairingCore", seed=args.seed,
                            dau=model.params.dau, hours=args.hours, wall_s=time.monotonic() - t0,
                            population={"visits": plan.n, "overrides": overrides},
                            engine="python" if why_python else "kernel")
    results["run"]["wall_s"] = round(time.monotonic() - t0, 3)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1, allow_nan=False))
    f = results["fairness"]
    pl = results["pair_latency_ms"]
    print(f"simulated {args.hours:g} h, {sim.visits} visits, {sim.pairings} pairings in {results['run']['wall_s']} s "
          f"({sim.jobs} process{'es' if sim.jobs > 1 else ''})")
    print(f"pair latency ms: p50 {pl['p50']} p99 {pl['p99']} max {pl['max']}")
    print(f"fairness: jain {_fmt(f['jain_index'])}, fifo inversions {_fmt(f['fifo_inversion_rate'])}, "
          f"starved {f['starved']}, wait p99 {_fmt(f['wait_ms']['p99'])} ms, "
          f"worst/best p99 {_fmt(f['worst_to_best_p99_ratio'])}, interest match {_fmt(f['interest_match_rate'])}")
    print(f"wrote {out / 'results.json'}")
    from harness.report import write_report_safely  # the same report as chatload run's

    report = write_report_safely(results, out / "report.html")
    if report:
        print(f"report {report}")
    return 0


def _fmt(x: Any) -> str:
    return "n/a" if x is None else (f"{x:.4g}" if isinstance(x, float) else str(x))
