"""How a virtual user behaves: a small parameter object the user asks "what next".

Why a tiny interface: the population issue replaces these simple parameters with a
calibrated model; users only call the methods of `Behaviour` (preferences, patience,
chat plan, end action, think time, signalling sizes), so the swap touches no user code.

Parameters come from the scenario's defaults (`configure(...)`), overridden by the JSON
object in CHATLOAD_SCENARIO_PARAMS (unknown keys are an error, so a typo never passes
silently). Defaults cite docs/CALIBRATION-style figures where one exists.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import random
from dataclasses import dataclass, field
from typing import Any


@dataclass
class BehaviourParams:
    """Every knob of the simple behaviour, with defaults."""

    # Who joins with what. Text versus video: 50/50 (no published split).
    mode_mix: dict[str, float] = field(default_factory=lambda: {"text": 0.5, "video": 0.5})
    # Share of users with interests: 20% (estimate, sweep 0-60%).
    interest_share: float = 0.2
    interest_vocabulary: int = 200
    interests_per_user: tuple[int, int] = (1, 3)
    interest_zipf_s: float = 1.1  # Zipf-like popularity over the vocabulary
    lang_mix: dict[str, float] = field(default_factory=lambda: {"en": 0.85, "es": 0.1, "de": 0.05})
    # Chat: length is lognormal (skips have a median of about 3 s); messages at a rate.
    chat_median_s: float = 3.0
    chat_sigma: float = 1.0
    chat_max_s: float = 60.0
    message_rate_per_s: float = 1.0
    message_padding: tuple[int, int] = (10, 60)  # extra characters per message
    typing_share: float = 0.7  # share of messages preceded by a typing indicator
    typing_lead_s: float = 0.3
    # End of a chat: next / leave / disconnect.
    end_next: float = 0.8
    end_leave: float = 0.1
    end_disconnect: float = 0.1
    # Waiting: a share of searches has a finite patience (5-20% leave while waiting).
    give_up_share: float = 0.1
    patience_mean_s: float = 2.0
    give_up_disconnect_share: float = 0.5  # of give-ups, how many close the socket (else leave)
    think_time_s: tuple[float, float] = (0.2, 1.0)  # pause after leave/disconnect before coming back
    # Video signalling.
    sdp_bytes: tuple[int, int] = (2000, 3500)  # realistic offer/answer SDP size
    ice_candidates: tuple[int, int] = (3, 6)
    ice_interval_s: float = 0.05
    # Oracle: a token must arrive (and partner_left follow a partner's end) within this.
    oracle_deadline_s: float = 5.0
    # Users wait this long at most for the partner's token before acting on a chat's end.
    token_wait_s: float = 5.0
    connect_timeout_s: float = 10.0

    @classmethod
    def build(cls, defaults: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None) -> BehaviourParams:
        names = {f.name: f for f in dataclasses.fields(cls)}
        merged: dict[str, Any] = {}
        for source in (defaults or {}, overrides or {}):
            for key, value in source.items():
                if key not in names:
                    raise ValueError(f"unknown scenario parameter {key!r}; known: {', '.join(sorted(names))}")
                if isinstance(value, list):
                    value = tuple(value)
                merged[key] = value
        params = cls(**merged)
        params.validate()
        return params

    def validate(self) -> None:
        for name in ("mode_mix", "lang_mix"):
            mix = getattr(self, name)
            if not mix or any(w < 0 for w in mix.values()) or sum(mix.values()) <= 0:
                raise ValueError(f"{name} must map choices to non-negative weights with a positive sum")
        if set(self.mode_mix) - {"text", "video"}:
            raise ValueError("mode_mix keys must be 'text' and/or 'video'")
        if min(self.end_next, self.end_leave, self.end_disconnect) < 0 or (
            self.end_next + self.end_leave + self.end_disconnect
        ) <= 0:
            raise ValueError("end_next/end_leave/end_disconnect must be non-negative with a positive sum")
        if self.message_rate_per_s < 0 or self.chat_median_s <= 0:
            raise ValueError("message_rate_per_s must be >= 0 and chat_median_s > 0")
        if not 0 <= self.interest_share <= 1 or not 0 <= self.give_up_share <= 1:
            raise ValueError("shares must be within [0, 1]")
        if self.sdp_bytes[1] > 3800:
            raise ValueError("sdp_bytes above 3800 would exceed the protocol's 4 KiB signal limit")


def params_from_env(defaults: dict[str, Any] | None = None) -> BehaviourParams:
    """Scenario defaults overridden by CHATLOAD_SCENARIO_PARAMS (a JSON object, may be empty)."""
    raw = os.environ.get("CHATLOAD_SCENARIO_PARAMS", "").strip()
    overrides = json.loads(raw) if raw else {}
    if not isinstance(overrides, dict):
        raise ValueError("CHATLOAD_SCENARIO_PARAMS must be a JSON object")
    return BehaviourParams.build(defaults, overrides)


_ACTIVE: BehaviourParams | None = None


def configure(**defaults: Any) -> BehaviourParams:
    """Called by a scenario: its defaults, overridden from the environment, become active."""
    global _ACTIVE
    _ACTIVE = params_from_env(defaults)
    return _ACTIVE


def set_active(params: BehaviourParams) -> BehaviourParams:
    """Called by population scenarios (harness/visitor.py), whose parameters are not
    BehaviourParams: they set the shared harness knobs (oracle deadline, token wait, ...)
    themselves, so CHATLOAD_SCENARIO_PARAMS is not read as BehaviourParams here."""
    global _ACTIVE
    _ACTIVE = params
    return _ACTIVE


def active() -> BehaviourParams:
    global _ACTIVE
    if _ACTIVE is None:
        _ACTIVE = params_from_env()
    return _ACTIVE


@dataclass
class ChatPlan:
    """What a user intends to do in one chat."""

    length_s: float
    message_interval_s: float  # mean gap between messages; inf = silent
    typing_share: float


class Behaviour:
    """One user's decisions, drawn from the parameters with the user's own seeded RNG."""

    def __init__(self, params: BehaviourParams, rng: random.Random) -> None:
        self.p = params
        self.rng = rng
        self._vocab_weights = [1.0 / (k ** params.interest_zipf_s) for k in range(1, params.interest_vocabulary + 1)]
        self.mode, self.lang, self.interests = self._draw_preferences()

    def _pick(self, mix: dict[str, float]) -> str:
        return self.rng.choices(list(mix), weights=list(mix.values()))[0]

    def _draw_preferences(self) -> tuple[str, str, list[str]]:
        mode = self._pick(self.p.mode_mix)
        lang = self._pick(self.p.lang_mix)
        interests: list[str] = []
        if self.p.interest_vocabulary > 0 and self.rng.random() < self.p.interest_share:
            lo, hi = self.p.interests_per_user
            n = self.rng.randint(lo, hi)
            picks = self.rng.choices(range(1, self.p.interest_vocabulary + 1), weights=self._vocab_weights, k=n)
            interests = sorted({f"topic{k}" for k in picks})
        return mode, lang, interests

    def preferences(self) -> tuple[str, str, list[str]]:
        """(mode, lang, interests) sent with join; fixed for a user's life."""
        return self.mode, self.lang, self.interests

    def patience(self) -> float | None:
        """Seconds this search waits before giving up, or None (waits until paired)."""
        if self.rng.random() < self.p.give_up_share:
            return self.rng.expovariate(1.0 / self.p.patience_mean_s) if self.p.patience_mean_s > 0 else 0.0
        return None

    def give_up_action(self) -> str:
        return "disconnect" if self.rng.random() < self.p.give_up_disconnect_share else "leave"

    def chat_plan(self, mode: str) -> ChatPlan:
        length = min(self.p.chat_max_s, self.rng.lognormvariate(math.log(self.p.chat_median_s), self.p.chat_sigma))
        rate = self.p.message_rate_per_s
        return ChatPlan(length, (1.0 / rate) if rate > 0 else math.inf, self.p.typing_share)

    def message_gap(self, plan: ChatPlan) -> float:
        if math.isinf(plan.message_interval_s):
            return math.inf
        return self.rng.expovariate(1.0 / plan.message_interval_s)

    def message_padding(self) -> int:
        lo, hi = self.p.message_padding
        return self.rng.randint(lo, hi)

    def types_first(self, plan: ChatPlan) -> bool:
        return self.rng.random() < plan.typing_share

    def end_action(self) -> str:
        """How this user ends a chat it decided to end: next, leave or disconnect."""
        p = self.p
        return self.rng.choices(("next", "leave", "disconnect"), weights=(p.end_next, p.end_leave, p.end_disconnect))[0]

    def think_time(self) -> float:
        lo, hi = self.p.think_time_s
        return self.rng.uniform(lo, hi)

    def sdp_size(self) -> int:
        return self.rng.randint(*self.p.sdp_bytes)

    def ice_count(self) -> int:
        return self.rng.randint(*self.p.ice_candidates)
