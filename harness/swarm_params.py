"""The `swarm.*` scenario parameters: how a large swarm reaches and holds its size.

Why separate from harness/scenario_config.py: these knobs shape the load generator at
scale (where its connections go, how fast it fills up, whether visitors only hold a socket)
rather than the population or the backend, and only scenarios that opt in (today
scenarios/peak_hour.py) understand them. Such a scenario takes them out of
CHATLOAD_SCENARIO_PARAMS (`take_from_env`) before the usual checks see the rest, so
`--param swarm.prefill=50000` works with `chatload run` and an unknown `swarm.` key still
fails loudly, naming the key.

Keys (flat `swarm.NAME`, or a `swarm` table in a JSON/TOML params source):
- `targets`: loopback targets to spread connections over (harness/loopback_spread.py);
  "" (default) connects to the run's target only.
- `idle`: true makes every visitor connect, get `welcome`, and hold the socket without
  joining until the run ends (memory per idle connection).
- `prefill`: visitors already online when the window opens (0: the run starts empty;
  -1, the default: the scenario's own figure, e.g. the preview's online count); they arrive spread evenly over `prefill_ramp_s` real seconds from `prefill_start_s`
  (harness/prefill.py).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, fields, replace
from typing import Any, Mapping

from harness.loopback_spread import parse as parse_targets
from harness.population import ParamError

PREFIX = "swarm"
ENV = "CHATLOAD_SCENARIO_PARAMS"


@dataclass(frozen=True)
class SwarmOptions:
    """Load-generator knobs for a swarm at scale (see the module docstring)."""

    targets: str = ""
    idle: bool = False
    prefill: int = -1
    prefill_start_s: float = 5.0
    prefill_ramp_s: float = 120.0

    def validate(self) -> None:
        try:
            parse_targets(self.targets)
        except ValueError as exc:
            raise ParamError(f"swarm.targets: {exc}") from None
        if self.prefill < -1:
            raise ParamError(f"swarm.prefill must be >= 0 (or -1: the scenario's figure), got {self.prefill}")
        if self.prefill_start_s < 0:
            raise ParamError(f"swarm.prefill_start_s must be >= 0, got {self.prefill_start_s}")
        if not self.prefill_ramp_s > 0:
            raise ParamError(f"swarm.prefill_ramp_s must be positive, got {self.prefill_ramp_s}")


_FIELDS = {f.name: f for f in fields(SwarmOptions)}


def _typed(name: str, value: Any) -> Any:
    default = getattr(SwarmOptions(), name)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ParamError(f"swarm.{name}: expected true or false, got {value!r}")
        return value
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ParamError(f"swarm.{name}: expected a string, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ParamError(f"swarm.{name}: expected a number, got {value!r}")
    if isinstance(default, int):
        if value != int(value):
            raise ParamError(f"swarm.{name}: expected a whole number, got {value!r}")
        return int(value)
    return float(value)


def split(params: Mapping[str, Any], base: SwarmOptions | None = None) -> tuple[dict[str, Any], SwarmOptions]:
    """(the params without swarm keys, the swarm options they set over `base`)."""
    rest: dict[str, Any] = {}
    changes: dict[str, Any] = {}
    for key, value in params.items():
        if key == PREFIX and isinstance(value, Mapping):
            items = [(str(k), v) for k, v in value.items()]
        elif str(key).startswith(PREFIX + "."):
            items = [(str(key)[len(PREFIX) + 1:], value)]
        else:
            rest[key] = value
            continue
        for name, v in items:
            if name not in _FIELDS:
                raise ParamError(f"unknown swarm parameter {name!r}; known: {', '.join(_FIELDS)}")
            changes[name] = _typed(name, v)
    opts = replace(base or SwarmOptions(), **changes)
    opts.validate()
    return rest, opts


def take_from_env(defaults: Mapping[str, Any] | None = None) -> SwarmOptions:
    """The swarm options of this run: `defaults` (the scenario's), then the swarm keys of
    CHATLOAD_SCENARIO_PARAMS, which are removed from it so the scenario checks see the rest."""
    _, base = split(dict(defaults or {}))
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return base
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ParamError(f"{ENV} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ParamError(f"{ENV} must be a JSON object")
    rest, opts = split(data, base)
    os.environ[ENV] = json.dumps(rest)
    return opts
