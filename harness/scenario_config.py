"""Parameters of a population-driven scenario: population, time scale, harness knobs, server flags.

Why one place: a scenario's defaults live in `scenarios/<name>.toml` (the file `chatload
plan NAME` previews), and a run overrides them from CHATLOAD_SCENARIO_PARAMS (`chatload
run --param KEY=VALUE` or `--params FILE.toml`). Both must mean the same thing, and a typo
must fail loudly, so the merge and the checks live here, free of Locust and I/O except
reading the TOML file.

Accepted keys (flat or in tables; later sources win):
- population parameters by name (`abuse_share = 0.2`), `population.NAME`, or a
  `[population]` table (harness.population.params);
- run keys `time_scale`, `start_hour`, `hours`, `seed` (top level or `[run]`);
- harness knobs (HarnessOptions below) by name, `harness.NAME` or `[harness]`;
- reference-server flags for the embedded server: `server.NAME` or a `[server]` table
  (`interest-fallback`, `trust-forwarded-for`, ...), merged over the computed defaults of
  `server_args()`.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from harness.population import ParamError, PopulationModel, PopulationParams
from harness.population.arrivals import HOUR_S

RUN_KEYS = ("time_scale", "start_hour", "hours", "seed")
#: Reference-server defaults that are time constants of the service (docs/server.md).
SERVER_INTEREST_FALLBACK_S = 5.0
SERVER_REMATCH_BLOCK_S = 10.0  # reference server default (PROTOCOL.md guarantee 2)
SERVER_RATE_LIMIT = 20.0
SERVER_RATE_BURST = 40.0


@dataclass(frozen=True)
class HarnessOptions:
    """Knobs of the harness side of a population run (not of the population itself)."""

    # An arrival that finds no free user slot waits this long (real s) for one, then is dropped.
    arrival_max_wait_s: float = 1.0
    # Send `X-Forwarded-For: <synthetic per-visitor address>` so an address-keyed server
    # (reference server with --trust-forwarded-for) sees distinct users on loopback.
    forwarded_for: bool = False
    # Chance a benign user reports an abuser partner of a kind other than `reported`
    # (that kind uses the population's report_probability).
    abuse_report_probability: float = 0.1
    # A reconnect-storm connection stays this long (model s, mean of an exponential).
    storm_hold_s: float = 0.5
    # Oracle deadline and token wait: backend time constants, never scaled by K.
    oracle_deadline_s: float = 5.0
    token_wait_s: float = 5.0
    connect_timeout_s: float = 10.0
    # Video signalling (sizes are wire figures, not model time).
    sdp_bytes: tuple[int, int] = (2000, 3500)
    ice_candidates: tuple[int, int] = (3, 6)
    ice_interval_s: float = 0.05
    # Slots when the run gives no -u: this many times the preview's peak online.
    slot_headroom: float = 1.25

    def validate(self) -> None:
        if self.arrival_max_wait_s < 0:
            raise ParamError("arrival_max_wait_s must be >= 0")
        if not 0 <= self.abuse_report_probability <= 1:
            raise ParamError("abuse_report_probability must be within [0, 1]")
        for name in ("storm_hold_s", "oracle_deadline_s", "token_wait_s", "connect_timeout_s", "ice_interval_s"):
            if not getattr(self, name) > 0:
                raise ParamError(f"{name} must be positive")
        if self.sdp_bytes[1] > 3800:
            raise ParamError("sdp_bytes above 3800 would exceed the protocol's 4 KiB signal limit")


_HARNESS_FIELDS = {f.name: f for f in dataclasses.fields(HarnessOptions)}
_POP_FIELDS = {f.name for f in dataclasses.fields(PopulationParams)}


@dataclass(frozen=True)
class ScenarioConfig:
    """Everything a population scenario needs, merged and checked."""

    name: str
    population: PopulationParams
    time_scale: float = 1.0
    start_hour: float = 0.0
    hours: float | None = None  # model hours of the window; None: what the run's duration plays
    seed: int | None = None
    harness: HarnessOptions = field(default_factory=HarnessOptions)
    server: dict[str, Any] = field(default_factory=dict)

    def model(self) -> PopulationModel:
        return PopulationModel(self.population)

    def window_hours(self, duration_s: float | None) -> float:
        """Model hours the run plays: its duration x K, capped by the configured window."""
        played = None if duration_s is None else duration_s * self.time_scale / HOUR_S
        if played is None:
            return self.hours if self.hours is not None else 1.0
        return played if self.hours is None else min(played, self.hours)

    def duration_s(self) -> float | None:
        """The real duration of the configured window, if it has one."""
        return None if self.hours is None else self.hours * HOUR_S / self.time_scale

    def server_args(self) -> list[str]:
        """Flags for the embedded reference server: its time constants divided by K (interest
        fallback, rematch block; the per-socket rate limit and burst multiplied by K, since every benign
        rate is), X-Forwarded-For trusted when the harness sends it, then explicit overrides."""
        k = self.time_scale
        flags: dict[str, Any] = {"interest-fallback": round(SERVER_INTEREST_FALLBACK_S / k, 6)}
        if k != 1.0:
            flags["rematch-block"] = round(SERVER_REMATCH_BLOCK_S / k, 6)
            flags["rate-limit"] = round(SERVER_RATE_LIMIT * k, 3)
            flags["rate-burst"] = int(math.ceil(SERVER_RATE_BURST * k))
        if self.harness.forwarded_for:
            flags["trust-forwarded-for"] = True
        flags.update(self.server)
        out: list[str] = []
        for name, value in flags.items():
            if value is True:
                out.append(f"--{name}")
            elif value is False or value is None:
                continue
            else:
                out += [f"--{name}", str(value)]
        return out


def scenario_toml(name: str) -> Path:
    import scenarios
    return Path(scenarios.__file__).resolve().parent / f"{name}.toml"


def _flatten(data: Mapping[str, Any], where: str) -> dict[str, dict[str, Any]]:
    """Sort keys into population / run / harness / server, or raise naming the bad key."""
    out: dict[str, dict[str, Any]] = {"population": {}, "run": {}, "harness": {}, "server": {}}
    for key, value in data.items():
        if key in ("population", "harness", "server", "run") and isinstance(value, Mapping):
            for k, v in value.items():
                _place(out, key, str(k), v, where)
            continue
        if key == "params" and isinstance(value, Mapping):
            for k, v in _flatten(value, where).items():
                for kk, vv in v.items():
                    out[k][kk] = vv
            continue
        head, dot, tail = str(key).partition(".")
        if dot and head in ("population", "harness", "server", "run"):
            _place(out, head, tail, value, where)
        elif key in RUN_KEYS:
            out["run"][key] = value
        elif key in _HARNESS_FIELDS:
            out["harness"][key] = value
        elif key in _POP_FIELDS:
            out["population"][key] = value
        else:
            raise ParamError(f"{where}: unknown scenario parameter {key!r}; use a population parameter "
                             f"(see `chatload plan --explain`), one of {', '.join(RUN_KEYS)}, a harness option "
                             f"({', '.join(_HARNESS_FIELDS)}) or server.FLAG")
    return out


def _place(out: dict[str, dict[str, Any]], table: str, key: str, value: Any, where: str) -> None:
    if table == "harness" and key not in _HARNESS_FIELDS:
        raise ParamError(f"{where}: unknown harness option {key!r}; known: {', '.join(_HARNESS_FIELDS)}")
    if table == "run" and key not in RUN_KEYS:
        raise ParamError(f"{where}: unknown run option {key!r}; known: {', '.join(RUN_KEYS)}")
    if table == "server":
        key = key.replace("_", "-")
    if table == "population" and "." in key:  # population.class_shares.skipper
        head, _, tail = key.partition(".")
        out[table].setdefault(head, {})[tail] = value
        return
    out[table][key] = value


def _number(name: str, value: Any, positive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ParamError(f"{name}: expected a number, got {value!r}")
    if positive and not value > 0:
        raise ParamError(f"{name} must be positive, got {value!r}")
    return float(value)


def _harness(base: HarnessOptions, changes: Mapping[str, Any]) -> HarnessOptions:
    typed: dict[str, Any] = {}
    for key, value in changes.items():
        current = getattr(base, key)
        if isinstance(current, bool):
            if not isinstance(value, bool):
                raise ParamError(f"{key}: expected true or false, got {value!r}")
            typed[key] = value
        elif isinstance(current, tuple):
            if not isinstance(value, (list, tuple)) or len(value) != 2:
                raise ParamError(f"{key}: expected a pair [lo, hi], got {value!r}")
            typed[key] = tuple(int(v) for v in value)
        else:
            typed[key] = _number(key, value, positive=False)
    opts = dataclasses.replace(base, **typed)
    opts.validate()
    return opts


def env_overrides() -> dict[str, Any]:
    """CHATLOAD_SCENARIO_PARAMS as a dict (empty when unset)."""
    raw = os.environ.get("CHATLOAD_SCENARIO_PARAMS", "").strip()
    try:
        data = json.loads(raw) if raw else {}
    except ValueError as exc:
        raise ParamError(f"CHATLOAD_SCENARIO_PARAMS is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ParamError("CHATLOAD_SCENARIO_PARAMS must be a JSON object")
    return data


def load(name: str, defaults: Mapping[str, Any] | None = None, overrides: Mapping[str, Any] | None = None,
         toml_path: Path | None = None) -> ScenarioConfig:
    """The scenario `name`: scenarios/<name>.toml, then `defaults`, then `overrides`
    (CHATLOAD_SCENARIO_PARAMS when None)."""
    sources: list[tuple[str, Mapping[str, Any]]] = []
    path = toml_path or scenario_toml(name)
    if path.is_file():
        try:
            sources.append((str(path.name), tomllib.loads(path.read_text())))
        except tomllib.TOMLDecodeError as exc:
            raise ParamError(f"{path.name}: not valid TOML: {exc}") from None
    if defaults:
        sources.append((f"{name} defaults", defaults))
    sources.append(("CHATLOAD_SCENARIO_PARAMS", env_overrides() if overrides is None else overrides))
    pop = PopulationParams()
    run: dict[str, Any] = {}
    harness = HarnessOptions()
    server: dict[str, Any] = {}
    for where, data in sources:
        parts = _flatten(data, where)
        try:
            pop = PopulationParams.from_dict(parts["population"], base=pop)
        except ParamError as exc:
            raise ParamError(f"{where}: {exc}") from None
        run.update(parts["run"])
        harness = _harness(harness, parts["harness"])
        server.update(parts["server"])
    k = _number("time_scale", run.get("time_scale", 1.0))
    hours = run.get("hours")
    seed = run.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ParamError(f"seed: expected an integer, got {seed!r}")
    return ScenarioConfig(
        name=name, population=pop, time_scale=k,
        start_hour=_number("start_hour", run.get("start_hour", 0.0), positive=False) % 24.0,
        hours=None if hours is None else _number("hours", hours), seed=seed, harness=harness, server=server,
    )


def main(argv: list[str] | None = None) -> int:
    """`python -m harness.scenario_config NAME`: the reference-server flags a scenario wants
    (with CHATLOAD_SCENARIO_PARAMS applied), for starting your own server to match."""
    import argparse
    import shlex
    import sys

    parser = argparse.ArgumentParser(prog="python -m harness.scenario_config", description=main.__doc__)
    parser.add_argument("scenario")
    args = parser.parse_args(argv)
    try:
        cfg = load(args.scenario)
    except ParamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(shlex.join(cfg.server_args()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
