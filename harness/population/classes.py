"""User classes and who presses next, which depends on both partners' classes.

Each class has a skip propensity s (the chance it skips a generic partner within seconds)
and an end weight w (its relative chance of being the one who ends a conversation). Facing
a partner changes both: partners keep a keeper (s and w times `keeper_factor`), and skip an
abuser more (s + (1 - s) * `abuser_skip_boost`). A chat is a quick skip unless neither side
skips: P(skip) = 1 - (1 - s_a')(1 - s_b'). The skipper is chosen in proportion to s', the
ender of a conversation in proportion to w'.
"""
from __future__ import annotations

import numpy as np

from .params import CLASSES, PopulationParams

SKIPPER, TALKER, KEEPER, IMPATIENT, ABUSER = range(len(CLASSES))


def class_probabilities(p: PopulationParams) -> np.ndarray:
    """Share of visits in each class (float64[len(CLASSES)]), abusers included."""
    probs = np.array([p.class_shares[c] * (1.0 - p.abuse_share) for c in CLASSES[:ABUSER]] + [p.abuse_share])
    return probs / probs.sum()


def draw_classes(p: PopulationParams, rng: np.random.Generator, n: int) -> np.ndarray:
    """int8[n] class codes drawn from `class_probabilities`."""
    return draw_categorical(class_probabilities(p), rng, n).astype(np.int8)


def draw_categorical(probs: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """Indices drawn from a categorical distribution (one uniform each: vectorised inverse CDF)."""
    cum = np.cumsum(probs)
    cum /= cum[-1]
    idx = np.searchsorted(cum, rng.random(n), side="right")
    return np.minimum(idx, len(probs) - 1)


class PairTable:
    """Per ordered class pair (self, partner): effective skip propensity and end weight."""

    def __init__(self, p: PopulationParams) -> None:
        k = len(CLASSES)
        s = np.array([p.skip_propensity[c] for c in CLASSES])
        w = np.array([p.end_weight[c] for c in CLASSES])
        self.skip = np.tile(s[:, None], (1, k))  # skip[self, partner]
        self.weight = np.tile(w[:, None], (1, k))
        self.skip[:, KEEPER] *= p.keeper_factor
        self.weight[:, KEEPER] *= p.keeper_factor
        self.skip[:, ABUSER] = self.skip[:, ABUSER] + (1.0 - self.skip[:, ABUSER]) * p.abuser_skip_boost
        # an abuser meeting an abuser keeps its own behaviour
        self.skip[ABUSER, ABUSER] = s[ABUSER]
        self.weight[ABUSER, ABUSER] = w[ABUSER]
        self.skip = np.clip(self.skip, 0.0, 1.0)

    def pair_skip(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Probability that a chat between classes a and b is a quick skip."""
        return 1.0 - (1.0 - self.skip[a, b]) * (1.0 - self.skip[b, a])

    def a_ends_skip(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Given a skip, the probability that a is the one who skipped."""
        sa, sb = self.skip[a, b], self.skip[b, a]
        total = sa + sb
        return np.divide(sa, total, out=np.full(np.shape(total), 0.5), where=total > 0)

    def a_ends_talk(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Given a conversation, the probability that a is the one who ends it."""
        wa, wb = self.weight[a, b], self.weight[b, a]
        total = wa + wb
        return np.divide(wa, total, out=np.full(np.shape(total), 0.5), where=total > 0)
