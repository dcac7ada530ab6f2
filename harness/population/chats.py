"""Chat length, messages and typing per chat, chats per visit, patience.

A chat's length is a mixture: a quick skip (lognormal, median about 3 s) with probability
P(skip | both classes), else a conversation (lognormal, median 20-30 s, sigma about 1.2)
or, for a share of conversations, a Pareto tail truncated to 10-60 minutes. Sampling is
vectorised; the exact mixture CDF and mean are here too, for the tests and for planning.
"""
from __future__ import annotations

import math

import numpy as np

from .classes import KEEPER, PairTable
from .params import PopulationParams


def _norm_cdf(z: np.ndarray) -> np.ndarray:
    from math import erf  # vectorised below; scipy is a test-only dependency
    return 0.5 * (1.0 + np.vectorize(erf, otypes=[float])(np.asarray(z) / math.sqrt(2.0)))


def lognormal(rng: np.random.Generator, median: np.ndarray | float, sigma: float, size: int | None) -> np.ndarray:
    """Lognormal draws parameterised by median and sigma (of the log)."""
    return np.asarray(median) * np.exp(sigma * rng.standard_normal(size))


def truncated_pareto(rng: np.random.Generator, xmin: float, xmax: float, alpha: float, size: int | None) -> np.ndarray:
    """Pareto(alpha) from xmin, truncated at xmax, by inverting its CDF."""
    u = rng.random(size)
    cut = 1.0 - (xmin / xmax) ** alpha
    return xmin / (1.0 - u * cut) ** (1.0 / alpha)


def truncated_pareto_cdf(x: np.ndarray, xmin: float, xmax: float, alpha: float) -> np.ndarray:
    x = np.clip(np.asarray(x, dtype=np.float64), xmin, xmax)
    return (1.0 - (xmin / x) ** alpha) / (1.0 - (xmin / xmax) ** alpha)


def truncated_pareto_mean(xmin: float, xmax: float, alpha: float) -> float:
    norm = 1.0 - (xmin / xmax) ** alpha
    if abs(alpha - 1.0) < 1e-12:
        return xmin * math.log(xmax / xmin) / norm
    return alpha * xmin**alpha * (xmin ** (1 - alpha) - xmax ** (1 - alpha)) / ((alpha - 1.0) * norm)


class ChatModel:
    """Samples chats between two classes and says who presses next."""

    def __init__(self, p: PopulationParams) -> None:
        self.p = p
        self.pairs = PairTable(p)

    def talk_median(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        keeper = (np.asarray(a) == KEEPER) | (np.asarray(b) == KEEPER)
        return np.where(keeper, self.p.talk_median_s * self.p.keeper_length_factor, self.p.talk_median_s)

    def sample(self, a, b, rng: np.random.Generator, size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(duration_s float64, who_ends int8: 0 = a, 1 = b) for chats between classes a and b."""
        p = self.p
        a = np.asarray(a, dtype=np.intp)
        b = np.asarray(b, dtype=np.intp)
        shape = np.broadcast_shapes(a.shape, b.shape, () if size is None else (size,))
        a = np.broadcast_to(a, shape)
        b = np.broadcast_to(b, shape)
        u_kind, u_who = rng.random(shape), rng.random(shape)
        is_skip = u_kind < self.pairs.pair_skip(a, b)
        is_tail = ~is_skip & (rng.random(shape) < p.tail_share)
        skip_len = lognormal(rng, p.skip_median_s, p.skip_sigma, shape)
        talk_len = lognormal(rng, self.talk_median(a, b), p.talk_sigma, shape)
        tail_len = truncated_pareto(rng, p.tail_min_s, p.tail_max_s, p.tail_alpha, shape)
        duration = np.where(is_skip, skip_len, np.where(is_tail, tail_len, talk_len))
        a_ends = np.where(is_skip, self.pairs.a_ends_skip(a, b), self.pairs.a_ends_talk(a, b))
        who = np.where(u_who < a_ends, 0, 1).astype(np.int8)
        if size is None and shape == ():
            return float(duration), int(who)  # type: ignore[return-value]
        return duration, who

    def cdf(self, x: np.ndarray, a: int, b: int) -> np.ndarray:
        """Exact CDF of the chat length between classes a and b (for KS tests and planning)."""
        p = self.p
        x = np.asarray(x, dtype=np.float64)
        ps = float(self.pairs.pair_skip(np.intp(a), np.intp(b)))
        med = float(self.talk_median(a, b))
        pos = np.maximum(x, 1e-300)
        f_skip = _norm_cdf(np.log(pos / p.skip_median_s) / p.skip_sigma)
        f_talk = _norm_cdf(np.log(pos / med) / p.talk_sigma)
        f_tail = np.where(x < p.tail_min_s, 0.0, truncated_pareto_cdf(x, p.tail_min_s, p.tail_max_s, p.tail_alpha))
        out = ps * f_skip + (1 - ps) * ((1 - p.tail_share) * f_talk + p.tail_share * f_tail)
        return np.where(x <= 0, 0.0, out)

    def mean(self, a: int, b: int) -> float:
        """Exact mean chat length between classes a and b."""
        p = self.p
        ps = float(self.pairs.pair_skip(np.intp(a), np.intp(b)))
        skip = p.skip_median_s * math.exp(p.skip_sigma**2 / 2)
        talk = float(self.talk_median(a, b)) * math.exp(p.talk_sigma**2 / 2)
        tail = truncated_pareto_mean(p.tail_min_s, p.tail_max_s, p.tail_alpha)
        return ps * skip + (1 - ps) * ((1 - p.tail_share) * talk + p.tail_share * tail)


def draw_chats_per_visit(p: PopulationParams, classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """int16 chats per visit: geometric on 1, 2, ... with the class mean (leave after each chat
    with probability 1/mean, so skippers who make many chats over-populate the waiting pool)."""
    from .params import CLASSES
    means = np.array([p.chats_mean[c] for c in CLASSES])[classes]
    chats = rng.geometric(1.0 / means)
    return np.minimum(chats, np.iinfo(np.int16).max).astype(np.int16)


def draw_patience(p: PopulationParams, classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """float32 seconds a visitor waits for a partner before giving up (lognormal per class)."""
    from .params import CLASSES
    medians = np.array([p.patience_median_s[c] for c in CLASSES])[classes]
    return lognormal(rng, medians, p.patience_sigma, classes.shape[0]).astype(np.float32)


def class_message_rates(p: PopulationParams) -> np.ndarray:
    """Messages per second while chatting, per class (abusers: their kind mix's mean)."""
    from .abuse import abuser_message_rate
    from .params import BENIGN_CLASSES
    return np.array([p.message_rate[c] for c in BENIGN_CLASSES] + [abuser_message_rate(p)])


def message_rate(p: PopulationParams, cls: int, mode: int = 0) -> float:
    """Text messages per second while chatting, for a class (and mode: video types less)."""
    rate = float(class_message_rates(p)[int(cls)])
    return rate * (p.video_message_factor if int(mode) == 1 else 1.0)


def draw_messages(p: PopulationParams, cls, duration_s, rng: np.random.Generator, mode=0) -> np.ndarray:
    """Messages one side sends in a chat of the given length: Poisson(rate x duration)."""
    rates = class_message_rates(p)[np.asarray(cls, dtype=np.intp)]
    rates = rates * np.where(np.asarray(mode) == 1, p.video_message_factor, 1.0)
    return rng.poisson(rates * np.asarray(duration_s))


def draw_typing_s(p: PopulationParams, rng: np.random.Generator, size: int | None = None) -> np.ndarray:
    """Typing-indicator time before a message, 0 for messages sent without one."""
    typed = rng.random(size) < p.typing_share
    return np.where(typed, lognormal(rng, p.typing_median_s, 0.6, size), 0.0)


def draw_message_chars(p: PopulationParams, rng: np.random.Generator, size: int | None = None) -> np.ndarray:
    """Characters in a message (lognormal around message_chars_median, at least 1)."""
    return np.maximum(1, np.rint(lognormal(rng, p.message_chars_median, 0.8, size))).astype(np.int32)
