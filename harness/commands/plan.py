"""`chatload plan`: preview a scenario's load hour by hour before running it.

    chatload plan [SCENARIO_OR_PARAMS] [--dau N] [--hours H] [--start-hour H0]
                  [--time-scale K] [--params FILE.toml] [--set KEY=VALUE ...] [--sample] [--json]

SCENARIO_OR_PARAMS is a scenario name with a `scenarios/<name>.toml` file, or a path to a
TOML file of population parameters (its `[population]` table, or its top level); omitted,
the calibrated defaults. Later sources override earlier ones: scenario, --params, --set,
then --dau. Exit codes: 0 ok, 2 bad parameters or an unknown scenario.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

from harness.population import ParamError, PopulationModel, PopulationParams
from harness.population.params import param_table, read_toml_overrides, read_toml_run_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", nargs="?", metavar="SCENARIO_OR_PARAMS",
                        help="scenario name (scenarios/<name>.toml) or a parameter TOML file; default: calibrated defaults")
    parser.add_argument("--params", action="append", default=[], metavar="FILE.toml",
                        help="population parameter overrides (repeatable; later files win)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="sets",
                        help="one override, VALUE in TOML syntax (e.g. --set abuse_share=0.2 "
                             "--set 'class_shares={skipper=0.9, talker=0.1, keeper=0, impatient=0}')")
    parser.add_argument("--dau", type=int, help="daily users (visits per model day)")
    parser.add_argument("--hours", type=float, help="model hours in the window (default 24, or the file's)")
    parser.add_argument("--start-hour", type=float, help="hour of day (UTC) at the start of the window (default 0)")
    parser.add_argument("--time-scale", type=float, metavar="K", help="K model seconds per real second (default 1)")
    parser.add_argument("--seed", type=int, help="seed for --sample (default 1)")
    parser.add_argument("--sample", action="store_true",
                        help="also build the plan with the seed and show the sampled arrivals per hour and build time")
    parser.add_argument("--json", action="store_true", help="print the preview as JSON")
    parser.add_argument("--explain", action="store_true", help="list every parameter with its value, source and kind")


def _scenario_dir() -> Path:
    import scenarios
    return Path(scenarios.__file__).resolve().parent


def resolve_source(name: str) -> Path:
    """A parameter file for SCENARIO_OR_PARAMS, or ParamError saying what exists."""
    path = Path(name)
    if path.suffix == ".toml" or path.is_file():
        if not path.is_file():
            raise ParamError(f"{name}: no such parameter file")
        return path
    candidate = _scenario_dir() / f"{name}.toml"
    if candidate.is_file():
        return candidate
    known = sorted(p.stem for p in _scenario_dir().glob("*.toml"))
    has_py = (_scenario_dir() / f"{name}.py").is_file()
    why = f"scenario {name!r} has no scenarios/{name}.toml with its parameters" if has_py \
        else f"unknown scenario {name!r}"
    raise ParamError(f"{why}; scenarios with parameters: {', '.join(known) or 'none yet'}; "
                     "or pass a TOML file, --params FILE.toml or plain options")


def _parse_set(item: str) -> dict[str, Any]:
    if "=" not in item:
        raise ParamError(f"--set {item!r}: expected KEY=VALUE")
    key, value = item.split("=", 1)
    try:
        return tomllib.loads(f"{key.strip()} = {value.strip()}")
    except tomllib.TOMLDecodeError as exc:
        raise ParamError(f"--set {item!r}: value is not TOML ({exc})") from None


def load(args: argparse.Namespace) -> tuple[PopulationModel, dict[str, Any], str]:
    """The model and run options (hours, start_hour, time_scale, seed) the arguments describe."""
    params = PopulationParams()
    options: dict[str, Any] = {"hours": 24.0, "start_hour": 0.0, "time_scale": 1.0, "seed": 1}
    title = "defaults"
    files = ([resolve_source(args.scenario)] if args.scenario else []) + [Path(f) for f in args.params]
    for path in files:
        if not path.is_file():
            raise ParamError(f"{path}: no such parameter file")
        params = PopulationParams.from_dict(read_toml_overrides(path), base=params)
        options.update(read_toml_run_options(path))
    if args.scenario:
        title = args.scenario
    for item in args.sets:
        params = PopulationParams.from_dict(_parse_set(item), base=params)
    if args.dau is not None:
        params = PopulationParams.from_dict({"dau": args.dau}, base=params)
    for key in ("hours", "start_hour", "time_scale", "seed"):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    for key in ("hours", "time_scale"):
        v = options[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
            raise ParamError(f"{key} must be a positive number, got {v!r}")
    return PopulationModel(params), options, title


def run(args: argparse.Namespace) -> int:
    from harness.population.planning import preview, render

    try:
        model, opts, title = load(args)
    except ParamError as exc:
        print(f"chatload plan: {exc}", file=sys.stderr)
        return 2
    if args.explain:
        values = model.params.to_dict()
        for row in param_table():
            print(f"{row['name']} = {values[row['name']]!r}  [{row['kind']}] {row['source']}")
        return 0
    pv = preview(model, start_hour=float(opts["start_hour"]), hours=float(opts["hours"]),
                 time_scale=float(opts["time_scale"]))
    sampled = None
    if args.sample:
        t0 = time.perf_counter()
        plan = model.build(seed=int(opts["seed"]), start_hour=float(opts["start_hour"]), hours=float(opts["hours"]))
        sampled = {"seed": int(opts["seed"]), "visits": plan.n, "build_s": time.perf_counter() - t0,
                   "per_hour": plan.hourly_counts().tolist()}
    if args.json:
        out = pv.to_dict()
        out["scenario"] = title
        if sampled:
            out["sampled"] = sampled
        print(json.dumps(out, indent=2, default=float))
        return 0
    print(render(pv, title=f"chatload plan: {title} (dau {model.params.dau:,})"))
    if sampled:
        expected = [r.arrivals for r in pv.rows]
        cells = ", ".join(f"{n:,} ({e:,.0f})" for n, e in zip(sampled["per_hour"], expected))
        print(f"sampled with seed {sampled['seed']}: {sampled['visits']:,} visits in {sampled['build_s']:.2f} s; "
              f"per hour, sampled (expected): {cells}")
    return 0
