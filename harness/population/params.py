"""Every parameter of the population model, with its default and where that default comes from.

The defaults are read off ../shared/CALIBRATION.md (copied into docs/population.md). Each
field carries metadata: `source` (the figure it reproduces) and `kind` (measured, operator,
press, estimate, scenario), so the docs and `chatload plan` can say how sure a number is.
Overrides come from a dict or a TOML file; an unknown key or a bad value is an error that
names the key, never a silent default.
"""
from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

#: The user classes, in the order of their int8 codes in a plan.
CLASSES: tuple[str, ...] = ("skipper", "talker", "keeper", "impatient", "abuser")
BENIGN_CLASSES: tuple[str, ...] = CLASSES[:4]
#: Abuse kinds; index 0 is "none" so `plan.abuse_kind` indexes this tuple directly.
ABUSE_KINDS: tuple[str, ...] = ("none", "spammer", "flooder", "reported", "reconnect_storm", "malformed")
MODES: tuple[str, ...] = ("text", "video")
KINDS = ("measured", "operator", "press", "estimate", "scenario", "harness")


class ParamError(ValueError):
    """A population parameter override is unknown or out of range (the caller's fault)."""


def _p(default: Any, source: str, kind: str, *, lo: float | None = None, hi: float | None = None) -> Any:
    """A dataclass field with its calibration source, kind and allowed range."""
    assert kind in KINDS, kind
    meta = {"source": source, "kind": kind, "lo": lo, "hi": hi}
    if isinstance(default, dict):
        return field(default_factory=lambda d=default: dict(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class PopulationParams:
    """All knobs of the model. Times are model seconds; rates are per model second."""

    # --- scale and the daily curve -------------------------------------------------
    dau: int = _p(3_000_000, "issue 4 (a day of 3 million daily users); CALIBRATION: Omegle about 1.7M visits a day, "
                  "51.7M unique visitors a month; each arrival is one visit", "scenario", lo=0)
    peak_to_trough: float = _p(1.45, "CALIBRATION diurnal shape: sinusoid, peak-to-trough 1.3-1.6 (middle)", "estimate", lo=1.0)
    peak_hour_utc: float = _p(2.0, "CALIBRATION diurnal shape: peak about 00-04 UTC (US evening)", "estimate", lo=0.0, hi=24.0)
    # --- flash crowd (off by default: multiplier 1) ---------------------------------
    burst_multiplier: float = _p(1.0, "issue 4 flash_crowd: 10x arrivals within a minute; 1 = no burst", "scenario", lo=1.0)
    burst_start_s: float = _p(0.0, "flash crowd start, model seconds after the plan start", "scenario", lo=0.0)
    burst_ramp_s: float = _p(60.0, "issue 4 flash_crowd: reach the multiplier within a minute", "scenario", lo=0.0)
    burst_hold_s: float = _p(600.0, "flash crowd plateau length", "estimate", lo=0.0)
    burst_decay_s: float = _p(300.0, "flash crowd linear decay back to the daily curve", "estimate", lo=0.0)
    # --- user classes ----------------------------------------------------------------
    class_shares: dict = _p({"skipper": 0.55, "talker": 0.25, "keeper": 0.10, "impatient": 0.10},
                            "CALIBRATION who presses next: about 10% kept much longer (keeper, measured small samples); "
                            "leave while waiting 5-20% of searches (impatient 10%); the rest split so 75-85% of chats "
                            "are skipped within 5 s (estimate). Shares of benign users, sum 1", "estimate", lo=0.0, hi=1.0)
    abuse_share: float = _p(0.05, "CALIBRATION spam and abuse: 1-30% of connections (Chatroulette 30% before "
                            "countermeasures, under 1% after)", "operator", lo=0.0, hi=1.0)
    abuse_kind_mix: dict = _p({"spammer": 0.4, "flooder": 0.15, "reported": 0.25, "reconnect_storm": 0.1, "malformed": 0.1},
                              "issue 4 abuse kinds; no published split", "estimate", lo=0.0, hi=1.0)
    # --- what each abuse kind does (no published figures) ------------------------------
    spam_rate: float = _p(0.5, "spammer: one link every two seconds while paired, inside sane rate limits", "estimate", lo=0.0)
    flood_rate: float = _p(10.0, "flooder: messages per second while paired, above the 1-5 a second a chat rate "
                           "limit allows", "estimate", lo=0.0)
    report_probability: float = _p(0.8, "reported: chance a partner reports this user per chat (Omegle: about "
                                   "600,000 child-abuse reports in 2022, press)", "estimate", lo=0.0, hi=1.0)
    storm_reconnects: float = _p(50.0, "reconnect_storm: mean reconnects per visit, each re-joining the queue",
                                 "estimate", lo=0.0)
    malformed_share: float = _p(0.3, "malformed: share of its frames that are not valid protocol frames", "estimate",
                                lo=0.0, hi=1.0)
    # --- chat length: who presses next ---------------------------------------------
    skip_propensity: dict = _p({"skipper": 0.80, "talker": 0.30, "keeper": 0.40, "impatient": 0.70, "abuser": 0.30},
                               "probability that a user of this class skips a generic partner within seconds; tuned so "
                               "75-85% of chats end within 5 s (CALIBRATION)", "estimate", lo=0.0, hi=1.0)
    end_weight: dict = _p({"skipper": 1.5, "talker": 1.0, "keeper": 1.0, "impatient": 1.5, "abuser": 0.3},
                          "relative chance of being the one who ends a conversation (strongly asymmetric: CALIBRATION "
                          "who presses next)", "estimate", lo=0.0)
    keeper_factor: float = _p(0.3, "a partner facing a keeper skips and ends this much less often (CALIBRATION: a ~10% "
                              "class is kept much longer by partners, measured in small samples; the factor is ours)", "estimate",
                              lo=0.0, hi=1.0)
    keeper_length_factor: float = _p(2.0, "conversations with a keeper last this much longer (median multiplier)",
                                     "estimate", lo=0.0)
    abuser_skip_boost: float = _p(0.8, "a partner facing an abuser skips with s + (1-s)*boost", "estimate", lo=0.0, hi=1.0)
    skip_median_s: float = _p(3.0, "CALIBRATION chat length: skips lognormal, median about 3 s (tester: 2.9 s average)",
                              "estimate", lo=0.0)
    skip_sigma: float = _p(0.45, "spread of skips, so about 87% of skips end within 5 s", "estimate", lo=0.0)
    talk_median_s: float = _p(25.0, "CALIBRATION chat length: conversations lognormal, median 20-30 s (23.7 s average "
                              "in a 12-hour session)", "estimate", lo=0.0)
    talk_sigma: float = _p(1.2, "CALIBRATION chat length: conversations sigma about 1.2", "estimate", lo=0.0)
    tail_share: float = _p(0.10, "share of conversations in the Pareto tail; with it a visit of 20-40 partners lasts "
                           "10-30 minutes (CALIBRATION visit length)", "estimate", lo=0.0, hi=1.0)
    tail_min_s: float = _p(600.0, "CALIBRATION chat length: Pareto tail from 10 minutes", "estimate", lo=0.0)
    tail_max_s: float = _p(3600.0, "CALIBRATION chat length: Pareto tail to 60 minutes (truncated there)", "estimate", lo=0.0)
    tail_alpha: float = _p(1.5, "Pareto tail exponent", "estimate", lo=0.0)
    # --- visits ------------------------------------------------------------------------
    chats_mean: dict = _p({"skipper": 40.0, "talker": 15.0, "keeper": 20.0, "impatient": 10.0, "abuser": 30.0},
                          "CALIBRATION visit length: 10-30 minutes, 20-40 partners a visit; fast skippers re-enter "
                          "the queue more often. Geometric number of chats per visit", "estimate", lo=1.0)
    patience_median_s: dict = _p({"skipper": 60.0, "talker": 60.0, "keeper": 60.0, "impatient": 3.0, "abuser": 120.0},
                                 "CALIBRATION leave while waiting: 5-20% of searches; expected wait mean well under "
                                 "1 s, p99 under 3 s, so only short patience leaves at a busy service", "estimate", lo=0.0)
    patience_sigma: float = _p(0.7, "spread of patience (lognormal)", "estimate", lo=0.0)
    reconnects_mean: float = _p(0.1, "benign reconnects (dropped connection, same visit) per visit; no published figure",
                                "estimate", lo=0.0)
    expected_wait_s: float = _p(0.5, "CALIBRATION expected wait: mean well under 1 s at Chatroulette-like load "
                                "(used by `chatload plan` only)", "estimate", lo=0.0)
    # --- messages and typing ------------------------------------------------------------
    message_rate: dict = _p({"skipper": 0.10, "talker": 0.15, "keeper": 0.15, "impatient": 0.10},
                            "text messages per second while chatting, benign classes (abusers: per kind below); "
                            "no published figure", "estimate", lo=0.0)
    video_message_factor: float = _p(0.3, "video users type less: text rate multiplier in video mode", "estimate", lo=0.0)
    typing_share: float = _p(0.7, "share of messages preceded by a typing indicator", "estimate", lo=0.0, hi=1.0)
    typing_median_s: float = _p(2.5, "typing indicator duration before a message (lognormal median)", "estimate", lo=0.0)
    message_chars_median: float = _p(30.0, "characters per message (lognormal median)", "estimate", lo=1.0)
    # --- interests, modes, languages ----------------------------------------------------
    interest_share: float = _p(0.2, "CALIBRATION share of users with interests: 20% default, sweep 0-60%",
                               "estimate", lo=0.0, hi=1.0)
    interests_min: int = _p(1, "issue 4: 1-3 interests each", "estimate", lo=1)
    interests_max: int = _p(3, "issue 4: 1-3 interests each", "estimate", lo=1)
    interest_vocab: int = _p(10_000, "CALIBRATION interest popularity: vocabulary of about 10,000 topics", "estimate", lo=1)
    interest_zipf_s: float = _p(1.0, "CALIBRATION interest popularity: Zipf-like (exponent 1)", "estimate", lo=0.0)
    interest_fallback_s: float = _p(5.0, "CALIBRATION interest fallback: 5 s (sweep 5-30 s), measured in public clients",
                                    "measured", lo=0.0)
    video_share: float = _p(0.5, "CALIBRATION text versus video: 50/50 default, no published split", "estimate",
                            lo=0.0, hi=1.0)
    lang_mix: dict = _p({"en": 0.60, "es": 0.10, "pt": 0.07, "fr": 0.05, "de": 0.05, "ru": 0.05, "ar": 0.04, "hi": 0.04},
                        "languages of visitors; no published split (mostly English-speaking audience)", "estimate",
                        lo=0.0, hi=1.0)

    def __post_init__(self) -> None:
        validate(self)

    # --- constructors --------------------------------------------------------------------
    @classmethod
    def from_dict(cls, overrides: Mapping[str, Any] | None = None, base: "PopulationParams | None" = None) -> "PopulationParams":
        """Defaults (or `base`) with `overrides` applied; dict-valued parameters merge per key."""
        return apply_overrides(base or cls(), overrides or {})

    @classmethod
    def from_toml(cls, path: str | Path, base: "PopulationParams | None" = None) -> "PopulationParams":
        """Read overrides from a TOML file: its `[population]` table if it has one, else its top level."""
        return cls.from_dict(read_toml_overrides(path), base)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (dict(v) if isinstance(v := getattr(self, f.name), dict) else v) for f in dataclasses.fields(self)}


def param_table() -> list[dict[str, Any]]:
    """One row per parameter: name, default, source, kind (for the docs and `chatload plan --explain`)."""
    defaults = PopulationParams()
    return [{"name": f.name, "default": getattr(defaults, f.name), "source": f.metadata["source"],
             "kind": f.metadata["kind"]} for f in dataclasses.fields(PopulationParams)]


_FIELDS = {f.name: f for f in dataclasses.fields(PopulationParams)}
_DICT_KEYS = {
    "class_shares": BENIGN_CLASSES,
    "abuse_kind_mix": ABUSE_KINDS[1:],
    "skip_propensity": CLASSES,
    "end_weight": CLASSES,
    "chats_mean": CLASSES,
    "patience_median_s": CLASSES,
    "message_rate": BENIGN_CLASSES,
    "lang_mix": None,  # any language code
}
_MIXES = ("class_shares", "abuse_kind_mix", "lang_mix")


def _number(name: str, value: Any, want_int: bool) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParamError(f"{name}: expected a number, got {value!r}")
    if want_int:
        if isinstance(value, float) and not value.is_integer():
            raise ParamError(f"{name}: expected an integer, got {value!r}")
        return int(value)
    if not math.isfinite(value):
        raise ParamError(f"{name}: expected a finite number, got {value!r}")
    return float(value)


def apply_overrides(base: PopulationParams, overrides: Mapping[str, Any]) -> PopulationParams:
    """Return `base` with `overrides`; raise ParamError naming any unknown key or bad value."""
    if not isinstance(overrides, Mapping):
        raise ParamError(f"population overrides must be a table of key = value, got {type(overrides).__name__}")
    changes: dict[str, Any] = {}
    for name, value in overrides.items():
        f = _FIELDS.get(name)
        if f is None:
            close = [k for k in _FIELDS if k.split("_")[0] == str(name).split("_")[0]]
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ParamError(f"unknown population parameter {name!r}{hint}; known: {', '.join(_FIELDS)}")
        current = getattr(base, name)
        if isinstance(current, dict):
            if not isinstance(value, Mapping):
                raise ParamError(f"{name}: expected a table like {{{', '.join(f'{k} = ...' for k in list(current)[:2])}}}, got {value!r}")
            allowed = _DICT_KEYS[name]
            merged = dict(current) if name != "lang_mix" else {}
            for key, v in value.items():
                if allowed is not None and key not in allowed:
                    raise ParamError(f"{name}: unknown key {key!r}; known: {', '.join(allowed)}")
                merged[str(key)] = _number(f"{name}.{key}", v, False)
            changes[name] = merged
        else:
            changes[name] = _number(name, value, isinstance(current, int) and not isinstance(current, bool))
    try:
        return dataclasses.replace(base, **changes)
    except ParamError:
        raise
    except TypeError as exc:  # pragma: no cover - replace() only fails on unknown names, filtered above
        raise ParamError(str(exc)) from exc


def validate(p: PopulationParams) -> None:
    """Check ranges and mixes; raise ParamError that names the parameter."""
    for f in dataclasses.fields(p):
        value = getattr(p, f.name)
        lo, hi = f.metadata["lo"], f.metadata["hi"]
        values = value.items() if isinstance(value, dict) else [(None, value)]
        for key, v in values:
            label = f.name if key is None else f"{f.name}.{key}"
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ParamError(f"{label}: expected a finite number, got {v!r}")
            if lo is not None and v < lo:
                raise ParamError(f"{label} = {v} is below its minimum {lo}")
            if hi is not None and v > hi:
                raise ParamError(f"{label} = {v} is above its maximum {hi}")
        if isinstance(value, dict) and _DICT_KEYS.get(f.name) is not None:
            missing = [k for k in _DICT_KEYS[f.name] if k not in value]
            if missing:
                raise ParamError(f"{f.name}: missing keys {', '.join(missing)}")
    for name in _MIXES:
        mix = getattr(p, name)
        total = sum(mix.values())
        if not mix or abs(total - 1.0) > 1e-6:
            raise ParamError(f"{name} must sum to 1, got {total:.6g} from {mix}")
    if p.interests_min > p.interests_max:
        raise ParamError(f"interests_min = {p.interests_min} is above interests_max = {p.interests_max}")
    if p.interests_max > p.interest_vocab:
        raise ParamError(f"interests_max = {p.interests_max} exceeds interest_vocab = {p.interest_vocab}")
    if p.tail_max_s <= p.tail_min_s:
        raise ParamError(f"tail_max_s = {p.tail_max_s} must exceed tail_min_s = {p.tail_min_s}")
    for name in ("skip_median_s", "talk_median_s", "tail_min_s", "tail_alpha", "typing_median_s"):
        if getattr(p, name) <= 0:
            raise ParamError(f"{name} must be positive, got {getattr(p, name)}")
    for cls, m in p.patience_median_s.items():
        if m <= 0:
            raise ParamError(f"patience_median_s.{cls} must be positive, got {m}")
    if p.dau > 0 and p.dau > 2_000_000_000:
        raise ParamError(f"dau = {p.dau} is too large (int32 indices)")


def read_toml_overrides(path: str | Path) -> dict[str, Any]:
    """The population overrides of a TOML file: its `[population]` table, else its top level
    minus the keys that belong to the run (`time_scale`, and the tables `run`/`scenario`)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ParamError(f"{path}: no such parameter file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ParamError(f"{path}: not valid TOML: {exc}") from None
    if "population" in data:
        table = data["population"]
        if not isinstance(table, dict):
            raise ParamError(f"{path}: [population] must be a table")
        return dict(table)
    return {k: v for k, v in data.items() if k not in RUN_KEYS}


#: Keys a parameter file may hold next to the population parameters (read by the commands).
RUN_KEYS = ("time_scale", "run", "scenario", "seed", "start_hour", "hours")


def read_toml_run_options(path: str | Path) -> dict[str, Any]:
    """`time_scale`, `seed`, `start_hour`, `hours` from the top level or a `[run]` table."""
    data = tomllib.loads(Path(path).read_text())
    out: dict[str, Any] = {}
    for table in (data, data.get("run", {}) if isinstance(data.get("run"), dict) else {}):
        for key in ("time_scale", "seed", "start_hour", "hours"):
            if key in table and not isinstance(table[key], dict):
                out[key] = table[key]
    return out
