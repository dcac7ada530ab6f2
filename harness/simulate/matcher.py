"""The matcher interface the simulator drives, and loading a team's matcher by name.

A matcher is any object with the pairing core's methods (reference_server/core.py), all
taking the simulated clock `now` in seconds and returning a list of effects:

    join(user, now, mode="text", lang="en", interests=()) -> [Paired | Waiting, ...]
    next(user, now) -> [PartnerLeft(partner, "next"), Paired | Waiting (user re-queued)]
    leave(user, now, reason="leave") -> [PartnerLeft(partner, reason)] or []
    disconnect(user, now) -> like leave(reason="disconnect"), then forget the user
    tick(now) -> effects of timers due by now (fallbacks, expiring blocks)
    next_wakeup() -> float | None: when tick() must run next

Effects are `reference_server.core.Paired(a, b, pair_id, mode, common, initiator, waited_a,
waited_b)`, `Waiting(user)` and `PartnerLeft(user, reason)`, or any objects with those class
names and fields. docs/simulate.md has a complete example.
"""
from __future__ import annotations

import importlib
import inspect
from typing import Any, Hashable, Iterable, Protocol


class Matcher(Protocol):
    def join(self, user: Hashable, now: float, mode: str = "text", lang: str = "en",
             interests: Iterable[str] = ()) -> list[Any]: ...
    def next(self, user: Hashable, now: float) -> list[Any]: ...
    def leave(self, user: Hashable, now: float, reason: str = "leave") -> list[Any]: ...
    def disconnect(self, user: Hashable, now: float) -> list[Any]: ...
    def tick(self, now: float) -> list[Any]: ...
    def next_wakeup(self) -> float | None: ...


DEFAULT_MATCHER = "reference_server.core:PairingCore"


def load_matcher_class(spec: str) -> type:
    """Import `module:Class` (or `module.Class`)."""
    if ":" in spec:
        module_name, _, attr = spec.partition(":")
    else:
        module_name, _, attr = spec.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"--matcher wants module:Class, got {spec!r}")
    module = importlib.import_module(module_name)
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    for name in ("join", "next", "leave", "disconnect", "tick", "next_wakeup"):
        if not callable(getattr(obj, name, None)):
            raise TypeError(f"{spec} has no method {name}(); see docs/simulate.md")
    return obj


def pools_independent(klass: type) -> bool:
    """True when the matcher class declares `pools_independent = True`: it never pairs users
    of different (mode, lang) and nothing in one pool changes another, so the simulator may
    run pools in separate processes (harness/simulate/shard.py)."""
    return getattr(klass, "pools_independent", False) is True


def make_matcher(spec: str | None = None, interest_fallback: float = 5.0, rematch_block: float = 10.0) -> Any:
    """Instantiate a matcher, passing interest_fallback / rematch_block if it takes them."""
    klass = load_matcher_class(spec or DEFAULT_MATCHER)
    try:
        names = set(inspect.signature(klass).parameters)
    except (TypeError, ValueError):
        names = set()
    kwargs = {k: v for k, v in (("interest_fallback", interest_fallback), ("rematch_block", rematch_block)) if k in names}
    return klass(**kwargs)
