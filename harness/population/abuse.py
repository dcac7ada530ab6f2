"""Abusers: which kind each abuser is, and what each kind does.

Kinds that hurt real services (issue 4): message spammers, flooders that exceed rate
limits, users who get reported, reconnect storms, malformed frames. Their figures are
parameters (spam_rate, flood_rate, report_probability, storm_reconnects,
malformed_share; estimates, no published numbers); `behaviour(params, kind)` gathers them
for the harness users and the simulator.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .classes import ABUSER, draw_categorical
from .params import ABUSE_KINDS, PopulationParams

NONE, SPAMMER, FLOODER, REPORTED, RECONNECT_STORM, MALFORMED = range(len(ABUSE_KINDS))


@dataclass(frozen=True)
class AbuseBehaviour:
    """What a user of one abuse kind does while connected (model time)."""

    kind: str
    message_rate: float          # chat messages per second while paired (spam, flood)
    report_probability: float    # chance a partner reports this user per chat
    reconnects_per_visit: float  # mean reconnects (drop the socket, connect again) per visit
    malformed_share: float       # share of the frames it sends that are malformed
    spam_text: bool              # messages look like spam (links, repeats)


def behaviour(p: PopulationParams, kind: int | str) -> AbuseBehaviour:
    """The behaviour of an abuse kind (0 / "none": a benign talker's figures)."""
    name = ABUSE_KINDS[kind] if isinstance(kind, (int, np.integer)) else kind
    talk = p.message_rate["talker"]
    table = {
        "none": AbuseBehaviour("none", talk, 0.0, p.reconnects_mean, 0.0, False),
        "spammer": AbuseBehaviour("spammer", p.spam_rate, 0.0, p.reconnects_mean, 0.0, True),
        "flooder": AbuseBehaviour("flooder", p.flood_rate, 0.0, p.reconnects_mean, 0.0, True),
        "reported": AbuseBehaviour("reported", talk, p.report_probability, p.reconnects_mean, 0.0, False),
        "reconnect_storm": AbuseBehaviour("reconnect_storm", 0.0, 0.0, p.storm_reconnects, 0.0, False),
        "malformed": AbuseBehaviour("malformed", talk, 0.0, p.reconnects_mean, p.malformed_share, False),
    }
    if name not in table:
        raise ValueError(f"unknown abuse kind {kind!r}; known: {', '.join(ABUSE_KINDS)}")
    return table[name]


def abuser_message_rate(p: PopulationParams) -> float:
    """Mean message rate of the abuser class (kind mix weighted), for the simulator and planning."""
    return sum(share * behaviour(p, kind).message_rate for kind, share in p.abuse_kind_mix.items())


def draw_abuse_kinds(p: PopulationParams, classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """int8 abuse kind per visit: 0 (none) for benign classes, a drawn kind for abusers."""
    kinds = np.zeros(classes.shape[0], dtype=np.int8)
    abusers = np.flatnonzero(classes == ABUSER)
    if abusers.size:
        probs = np.array([p.abuse_kind_mix[k] for k in ABUSE_KINDS[1:]])
        kinds[abusers] = 1 + draw_categorical(probs, rng, abusers.size)
    return kinds


def reconnects(p: PopulationParams, abuse_kind: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """int16 reconnects per visit: Poisson with the kind's mean (benign: reconnects_mean)."""
    means = np.array([behaviour(p, k).reconnects_per_visit for k in ABUSE_KINDS])[abuse_kind]
    return np.minimum(rng.poisson(means), np.iinfo(np.int16).max).astype(np.int16)
