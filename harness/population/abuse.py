"""Abusers: which kind each abuser is, and what each kind does.

Kinds that hurt real services (issue 4): message spammers, flooders that exceed rate
limits, users who get reported, reconnect storms, malformed frames. The behaviour figures
below are estimates (no published numbers); the harness users read them through
`ABUSE_BEHAVIOUR` so a scenario can change one place.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .classes import ABUSER, draw_categorical
from .params import ABUSE_KINDS, PopulationParams

NONE, SPAMMER, FLOODER, REPORTED, RECONNECT_STORM, MALFORMED = range(len(ABUSE_KINDS))


@dataclass(frozen=True)
class AbuseBehaviour:
    """What an abuser of one kind does while connected (model time)."""

    message_rate: float          # chat messages per second while paired (spam, flood)
    report_probability: float    # chance a partner reports this user per chat
    reconnects_per_visit: float  # mean reconnects (drop the socket, connect again) per visit
    malformed_share: float       # share of the frames it sends that are malformed
    spam_text: bool              # messages look like spam (links, repeats)


ABUSE_BEHAVIOUR: dict[str, AbuseBehaviour] = {
    "none": AbuseBehaviour(0.0, 0.0, 0.0, 0.0, False),
    # one link every two seconds: annoying, inside any sane rate limit
    "spammer": AbuseBehaviour(0.5, 0.3, 0.0, 0.0, True),
    # 50 messages a second: above any per-user rate limit a chat service would set
    "flooder": AbuseBehaviour(50.0, 0.2, 0.0, 0.0, True),
    # behaves, but partners report it (most of the ~600,000 reports a year at Omegle were about such users)
    "reported": AbuseBehaviour(0.15, 0.8, 0.0, 0.0, False),
    # drops and reopens its connection again and again, re-joining the queue each time
    "reconnect_storm": AbuseBehaviour(0.0, 0.0, 50.0, 0.0, False),
    # a share of its frames are not valid protocol frames
    "malformed": AbuseBehaviour(0.1, 0.0, 0.0, 0.3, False),
}


def draw_abuse_kinds(p: PopulationParams, classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """int8 abuse kind per visit: 0 (none) for benign classes, a drawn kind for abusers."""
    kinds = np.zeros(classes.shape[0], dtype=np.int8)
    abusers = np.flatnonzero(classes == ABUSER)
    if abusers.size:
        probs = np.array([p.abuse_kind_mix[k] for k in ABUSE_KINDS[1:]])
        kinds[abusers] = 1 + draw_categorical(probs, rng, abusers.size)
    return kinds


def reconnects(p: PopulationParams, abuse_kind: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """int16 reconnects per visit: Poisson(reconnects_mean), or the kind's own mean for reconnect storms."""
    means = np.array([ABUSE_BEHAVIOUR[k].reconnects_per_visit for k in ABUSE_KINDS])[abuse_kind]
    means = np.where(means > 0, means, p.reconnects_mean)
    return np.minimum(rng.poisson(means), np.iinfo(np.int16).max).astype(np.int16)
