"""Small populations for the simulator tests (test data: a busy quarter-hour, short visits).

Interests are common (60%, a 30-topic vocabulary) and the two languages equally likely, so
an unfair choice among several compatible waiting users shows, and a fair matcher gives
every language the same waits.
"""
from __future__ import annotations

from harness.population import PopulationModel

SHORT_VISITS = {c: 4.0 for c in ("skipper", "talker", "keeper", "impatient", "abuser")}


def small_model(**overrides) -> PopulationModel:
    params = dict(dau=200_000, interest_share=0.6, interest_vocab=30, video_share=0.5,
                  lang_mix={"en": 0.5, "es": 0.5}, chats_mean=SHORT_VISITS)
    params.update(overrides)
    return PopulationModel(**params)
