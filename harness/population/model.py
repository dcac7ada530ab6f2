"""PopulationModel and Plan: the seeded, vectorised population of a plan window.

`PopulationModel(**overrides).build(seed, start_hour, hours)` returns a Plan: one row per
visit (arrival), columns as numpy arrays. Each column draws from its own child of the seed
(numpy SeedSequence.spawn), so the plan is identical for a seed, and changing one parameter
(say the interest share) leaves the other columns (say the arrival times) where they were.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import abuse, chats, classes, interests
from .arrivals import HOUR_S, ArrivalCurve
from .params import ABUSE_KINDS, CLASSES, MODES, PopulationParams

# Child seed streams, by column; append only (reordering changes every plan).
_STREAMS = ("arrivals", "class", "mode", "lang", "interests", "patience", "chats", "abuse", "reconnects")


@dataclass
class Plan:
    """One row per visit, sorted by arrival time. Times in model seconds unless time_scale != 1."""

    arrival_s: np.ndarray          # float64[n], sorted, seconds since the plan start
    user_class: np.ndarray         # int8[n], index into CLASSES
    mode: np.ndarray               # int8[n], index into MODES
    lang: np.ndarray               # int16[n], index into langs
    interest_offsets: np.ndarray   # int64[n + 1], CSR offsets into interest_ids
    interest_ids: np.ndarray       # int32[...], vocabulary indices (names f"t{idx}")
    patience_s: np.ndarray         # float32[n], wait for a partner before giving up
    chats: np.ndarray              # int16[n], chats in this visit before leaving
    abuse_kind: np.ndarray         # int8[n], 0 none, else index into ABUSE_KINDS
    reconnects: np.ndarray         # int16[n], connection drops and reconnects during the visit
    langs: tuple[str, ...]
    seed: int | None
    start_hour: float
    hours: float
    time_scale: float = 1.0        # K: this plan plays K model seconds per second of its clock
    params: PopulationParams | None = field(default=None, repr=False)

    COLUMNS = ("arrival_s", "user_class", "mode", "lang", "patience_s", "chats", "abuse_kind", "reconnects")

    @property
    def n(self) -> int:
        return int(self.arrival_s.shape[0])

    def __len__(self) -> int:
        return self.n

    @property
    def duration_s(self) -> float:
        """Length of the window on this plan's clock (model seconds / time_scale)."""
        return self.hours * HOUR_S / self.time_scale

    def interests_of(self, i: int) -> list[str]:
        lo, hi = self.interest_offsets[i], self.interest_offsets[i + 1]
        return [interests.interest_name(k) for k in self.interest_ids[lo:hi]]

    def interest_counts(self) -> np.ndarray:
        return np.diff(self.interest_offsets)

    def row(self, i: int) -> dict[str, Any]:
        """One visit as plain Python values (what a Locust user needs to start)."""
        return {
            "index": i,
            "arrival_s": float(self.arrival_s[i]),
            "user_class": CLASSES[self.user_class[i]],
            "mode": MODES[self.mode[i]],
            "lang": self.langs[self.lang[i]],
            "interests": self.interests_of(i),
            "patience_s": float(self.patience_s[i]),
            "chats": int(self.chats[i]),
            "abuse_kind": ABUSE_KINDS[self.abuse_kind[i]],
            "reconnects": int(self.reconnects[i]),
        }

    def select(self, index: np.ndarray | slice) -> "Plan":
        """A sub-plan of the given rows (a slice or sorted index array), CSR rebuilt."""
        rows = np.arange(self.n)[index]
        counts = np.diff(self.interest_offsets)[rows]
        offsets = np.zeros(rows.shape[0] + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        starts = self.interest_offsets[rows]
        gather = np.repeat(starts - offsets[:-1], counts) + np.arange(int(offsets[-1]))
        cols = {c: getattr(self, c)[rows] for c in self.COLUMNS}
        return dataclasses.replace(self, interest_offsets=offsets, interest_ids=self.interest_ids[gather], **cols)

    def window(self, t0: float, t1: float) -> "Plan":
        """Visits arriving in [t0, t1) on this plan's clock (arrivals are sorted: a slice)."""
        lo, hi = np.searchsorted(self.arrival_s, [t0, t1], side="left")
        return self.select(slice(int(lo), int(hi)))

    def hourly_counts(self) -> np.ndarray:
        """Arrivals in each model hour of the window."""
        hours = int(np.ceil(self.hours))
        model_t = self.arrival_s * self.time_scale
        return np.bincount(np.minimum((model_t // HOUR_S).astype(np.int64), max(hours - 1, 0)), minlength=hours)

    def same_as(self, other: "Plan") -> bool:
        """Column-by-column equality (for determinism checks)."""
        cols = self.COLUMNS + ("interest_offsets", "interest_ids")
        return self.langs == other.langs and all(np.array_equal(getattr(self, c), getattr(other, c)) for c in cols)


class PopulationModel:
    """The population: parameters plus the samplers the harness and the simulator call."""

    CLASSES = CLASSES
    MODES = MODES
    ABUSE_KINDS = ABUSE_KINDS

    def __init__(self, params: PopulationParams | None = None, **overrides: Any) -> None:
        self.params = PopulationParams.from_dict(overrides, base=params)
        self.langs: tuple[str, ...] = tuple(self.params.lang_mix)
        self.chat_model = chats.ChatModel(self.params)

    def curve(self, start_hour: float = 0.0) -> ArrivalCurve:
        p = self.params
        return ArrivalCurve(
            dau=p.dau, peak_to_trough=p.peak_to_trough, peak_hour_utc=p.peak_hour_utc, start_hour=start_hour,
            burst_multiplier=p.burst_multiplier, burst_start_s=p.burst_start_s, burst_ramp_s=p.burst_ramp_s,
            burst_hold_s=p.burst_hold_s, burst_decay_s=p.burst_decay_s,
        )

    def build(self, seed: int | None = 1, start_hour: float = 0.0, hours: float = 24.0) -> Plan:
        """Every visit of the window [start_hour, start_hour + hours) with its attributes."""
        if not hours > 0:
            raise ValueError(f"hours must be positive, got {hours}")
        p = self.params
        rngs = dict(zip(_STREAMS, (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(_STREAMS)))))
        arrival_s = self.curve(start_hour).sample(rngs["arrivals"], hours * HOUR_S)
        n = arrival_s.shape[0]
        user_class = classes.draw_classes(p, rngs["class"], n)
        mode = (rngs["mode"].random(n) < p.video_share).astype(np.int8)
        lang_probs = np.array([p.lang_mix[k] for k in self.langs])
        lang = classes.draw_categorical(lang_probs, rngs["lang"], n).astype(np.int16)
        offsets, ids = interests.draw_interests(p, rngs["interests"], n)
        patience = chats.draw_patience(p, user_class, rngs["patience"])
        n_chats = chats.draw_chats_per_visit(p, user_class, rngs["chats"])
        kinds = abuse.draw_abuse_kinds(p, user_class, rngs["abuse"])
        recon = abuse.reconnects(p, kinds, rngs["reconnects"])
        return Plan(arrival_s=arrival_s, user_class=user_class, mode=mode, lang=lang, interest_offsets=offsets,
                    interest_ids=ids, patience_s=patience, chats=n_chats, abuse_kind=kinds, reconnects=recon,
                    langs=self.langs, seed=seed, start_hour=start_hour, hours=hours, params=p)

    # --- samplers used while a chat runs -------------------------------------------------
    def chat_length_s(self, cls_a, cls_b, rng: np.random.Generator, size: int | None = None):
        """(duration_s, who_ends) of chats between classes a and b; who_ends 0 = a, 1 = b.
        Scalars in and size None give Python scalars; otherwise arrays."""
        return self.chat_model.sample(cls_a, cls_b, rng, size)

    def messages_rate(self, cls: int, mode: int = 0) -> float:
        """Messages per model second a user of this class sends while chatting."""
        return chats.message_rate(self.params, cls, mode)

    def abuse_behaviour(self, kind: int | str) -> abuse.AbuseBehaviour:
        """What a user of this abuse kind does (rates per model second)."""
        return abuse.behaviour(self.params, kind)
