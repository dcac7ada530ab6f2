"""A population visitor's decisions, pure: what its plan row, the model and K say it does.

Kept apart from harness/visitor.py (which runs under Locust) so it can be tested without
gevent. Times are real seconds: model durations / K, model rates x K.
"""
from __future__ import annotations

import hashlib
import math
import random
from typing import Any

import numpy as np

from harness import abuse as abuse_mod
from harness import scenario_config
from harness.population import CLASSES, PopulationModel
from harness.population.classes import ABUSER, TALKER
from harness.population.params import BENIGN_CLASSES
from harness.population.timescale import TimeScale

#: Longest message padding (harness/users.py's pad text is this long).
MAX_PADDING = 4096


def class_index(label: str | None) -> int:
    """Class code of a visitor label (abuse kinds are the abuser class; others talk)."""
    if label in BENIGN_CLASSES:
        return CLASSES.index(label)
    if abuse_mod.is_abuser_label(label):
        return ABUSER
    return TALKER


def chat_rng(seed: int, key_a: tuple[str, int], key_b: tuple[str, int]) -> np.random.Generator:
    """One RNG both partners derive alike from the two chat keys (sorted) and the run seed."""
    a, b = sorted([key_a, key_b])
    digest = hashlib.blake2b(f"{seed}|{a[0]}#{a[1]}|{b[0]}#{b[1]}".encode(), digest_size=8).digest()
    return np.random.default_rng(int.from_bytes(digest, "little"))


class VisitBehaviour:
    """One visitor's decisions, from its plan row, the model and the time scale (real seconds)."""

    def __init__(self, row: dict[str, Any], model: PopulationModel, ts: TimeScale, rng: random.Random,
                 opts: scenario_config.HarnessOptions) -> None:
        self.row, self.model, self.ts, self.rng, self.opts = row, model, ts, rng, opts
        self.p = model.params
        self.cls = CLASSES.index(row["user_class"])
        self.kind = row["abuse_kind"]
        self.label = self.kind if self.kind != "none" else row["user_class"]
        self.mode = 1 if row["mode"] == "video" else 0
        if self.kind in ("spammer", "flooder"):
            rate = model.abuse_behaviour(self.kind).message_rate
        else:
            rate = model.messages_rate(TALKER if self.cls == ABUSER else self.cls, self.mode)
        self.rate = ts.rate_to_real(rate)

    def patience_s(self) -> float:
        """Real seconds: the row comes from the real-time plan (plan_to_real already divided by K)."""
        return float(self.row["patience_s"])

    def message_gap(self) -> float:
        return self.rng.expovariate(self.rate) if self.rate > 0 else math.inf

    def typing_lead(self, gap: float) -> float:
        """Real seconds of typing indicator before the next message (0: none)."""
        if self.kind == "flooder" or self.rng.random() >= self.p.typing_share:
            return 0.0
        return min(gap, self.ts.to_real_s(self.p.typing_median_s * math.exp(0.6 * self.rng.gauss(0, 1))))

    def padding(self) -> int:
        n = int(round(self.p.message_chars_median * math.exp(0.8 * self.rng.gauss(0, 1))))
        return max(1, min(n, MAX_PADDING))

    def draw_chat(self, seed: int, me: tuple[str, int], peer: tuple[str, int], peer_label: str | None
                  ) -> tuple[float, bool]:
        """(real length, do I end it) agreed by both partners."""
        my_cls, peer_cls = self.cls, class_index(peer_label)
        a_is_me = me < peer
        a, b = (my_cls, peer_cls) if a_is_me else (peer_cls, my_cls)
        duration, who = self.model.chat_length_s(a, b, chat_rng(seed, me, peer))
        return self.ts.to_real_s(float(duration)), (who == 0) == a_is_me

    def reports(self, peer_label: str | None) -> bool:
        """Does this benign visitor report an abuser partner?"""
        if self.cls == ABUSER or not abuse_mod.is_abuser_label(peer_label):
            return False
        prob = self.p.report_probability if peer_label == "reported" else self.opts.abuse_report_probability
        return self.rng.random() < prob

    def malformed_now(self) -> bool:
        return self.kind == "malformed" and self.rng.random() < self.p.malformed_share

    def storm_hold_s(self) -> float:
        return self.ts.to_real_s(self.rng.expovariate(1.0 / self.opts.storm_hold_s))


def forwarded_address(index: int) -> str:
    """A synthetic client address per plan row (10.0.0.1, 10.0.0.2, ...)."""
    n = index + 1
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"
