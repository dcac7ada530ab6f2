"""Live runs: ticket dicts from the harness's ledger, and the rules a live run is judged by.

Why: the workers keep one record per chat (harness/ledger.py: `u`, `c`, `peer` = [user,
chat] learnt from the partner's token, `pair`, times in epoch nanoseconds) and one per
search given up. The fairness analysis wants one ticket per queue entry in seconds, with
the partner named the same way as the ticket's own user, so partners' tickets are found
by their chat keys (exact, even on backends without pair ids). Both results.json's ticket
sample and its `fairness` section are made from these dicts, so a reader can recompute
the section from an uncapped sample.

Times of a live run are real seconds at the client. A time-compressed scenario (K > 1)
plays model durations divided by K, so its rules are too: the interest fallback is what
the backend was told (`server.interest-fallback`, else 5/K, as the scenario's
SERVER_ARGS), the starvation threshold is 30/K; the rematch block (`server.rematch-block`,
else 10 s) and the network tolerance are real time.
"""
from __future__ import annotations

import gc
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from .params import FairnessParams

#: Environment variable with FairnessParams overrides (a JSON object) for live runs.
ENV_PARAMS = "CHATLOAD_FAIRNESS_PARAMS"
#: The reference server's defaults (PROTOCOL.md rule 5 and rule 2), in model seconds.
DEFAULT_FALLBACK_S = 5.0
DEFAULT_REMATCH_BLOCK_S = 10.0


def _s(ns: Any) -> float | None:
    """Epoch nanoseconds to seconds (microsecond resolution survives in a float64)."""
    return None if ns is None else int(ns) / 1e9


def chat_ticket(r: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ticket of one chat record (the search that led to it), or None.

    None for a record without a search time, and for an `abandoned` record (`paired`
    arrived after the user had sent `leave`): that search is already a give-up. No
    interests is the empty tuple (JSON writes it as []): a dict of atomic values only is
    never tracked by the garbage collector, which a million ticket dicts otherwise keep busy.
    """
    get = r.get
    t_req = get("t_req")
    if t_req is None or get("end") == "abandoned":
        return None
    peer = get("peer")
    t_paired, t_end = get("t_paired"), get("t_end")
    return {
        "user": r["u"], "chat": get("c"), "cls": get("cls"), "mode": get("mode"), "lang": get("lang"),
        "interests": get("interests") or (), "t_join": int(t_req) / 1e9,
        "t_paired": None if t_paired is None else int(t_paired) / 1e9, "t_gave_up": None,
        "peer": peer[0] if peer else None, "peer_chat": peer[1] if peer else None,
        "pair": get("pair"), "t_chat_end": None if t_end is None else int(t_end) / 1e9,
    }


def wait_ticket(w: Mapping[str, Any], still_waiting: bool = False) -> dict[str, Any] | None:
    """The ticket of a search given up (`t_gave_up`), or still open when the run ended."""
    if w.get("t_req") is None:
        return None
    return {
        "user": w["u"], "chat": None, "cls": w.get("cls"), "mode": w.get("mode"), "lang": w.get("lang"),
        "interests": w.get("interests") or (), "t_join": _s(w["t_req"]), "t_paired": None,
        "t_gave_up": None if still_waiting else _s(w.get("t_gave_up")), "peer": None, "peer_chat": None,
        "pair": None, "t_chat_end": None,
    }


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector (if on) for a block that makes millions of dicts.

    Why: every few hundred new containers CPython collects, and the older generations'
    collections walk every live object; building a million ticket dicts next to the run's
    million records spent 4 of 5 seconds there. Dicts of plain values make no cycles.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def live_tickets(records: Iterable[Mapping[str, Any]], waits: Iterable[Mapping[str, Any]],
                 open_searches: Iterable[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    """Every ticket of a live run: chats, then give-ups, then searches open at the end."""
    with gc_paused():
        out = [t for t in map(chat_ticket, records) if t is not None]
        out.extend(t for t in map(wait_ticket, waits) if t is not None)
        out.extend(t for t in (wait_ticket(w, still_waiting=True) for w in open_searches) if t is not None)
    return out


def open_search(view: Any) -> dict[str, Any] | None:
    """A user view still waiting (harness.ledger.UserView), as a give-up-shaped dict without
    `t_gave_up`: the workers ship these once, at the end, so censored waits are counted."""
    if getattr(view, "state", None) != "waiting" or getattr(view, "t_req", None) is None:
        return None
    mode, lang, interests = view.prefs
    return {"u": view.user, "cls": view.cls, "mode": mode, "lang": lang, "interests": list(interests),
            "t_req": view.t_req}


def _flag(args: Iterable[str], name: str) -> float | None:
    """The last value of `--name X` or `--name=X` in a server command line, if any."""
    found, args = None, list(args)
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            found = args[i + 1]
        elif a.startswith(name + "="):
            found = a.split("=", 1)[1]
    try:
        return None if found is None else float(found)
    except ValueError:
        return None


def params_for_run(scenario: Any = None, env: Mapping[str, str] | None = None,
                   server_args: Iterable[str] | None = None) -> FairnessParams:
    """The FairnessParams of a live run.

    `scenario` is a harness.scenario_config.ScenarioConfig (population scenarios) or None
    (closed-loop scenarios: real time, the protocol's defaults). `server_args`, the flags
    the embedded reference server really ran with (results `run.server_args`), win over
    the scenario's; `CHATLOAD_FAIRNESS_PARAMS` (JSON object of FairnessParams fields)
    wins over everything.
    """
    values: dict[str, Any] = {}
    if scenario is not None:
        k = float(getattr(scenario, "time_scale", 1.0) or 1.0)
        server = dict(getattr(scenario, "server", {}) or {})
        fb = server.get("interest-fallback")
        values["interest_fallback_s"] = float(fb) if fb is not None else DEFAULT_FALLBACK_S / k
        rb = server.get("rematch-block")
        values["rematch_block_s"] = float(rb) if rb is not None else DEFAULT_REMATCH_BLOCK_S / k
        values["starvation_threshold_s"] = FairnessParams.starvation_threshold_s / k
    for flag, key in (("--interest-fallback", "interest_fallback_s"), ("--rematch-block", "rematch_block_s")):
        v = _flag(server_args or (), flag)
        if v is not None:
            values[key] = v
    raw = (os.environ if env is None else env).get(ENV_PARAMS, "").strip()
    if raw:
        try:
            extra = json.loads(raw)
        except ValueError as exc:
            raise ValueError(f"{ENV_PARAMS} is not JSON: {exc}") from None
        if not isinstance(extra, dict):
            raise ValueError(f"{ENV_PARAMS} must be a JSON object")
        values.update(extra)
    return FairnessParams.from_mapping(values)
