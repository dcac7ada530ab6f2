"""How the server process sets CPython's garbage collector.

Why: every session, pairing-core user and queued effect is a container object, and the
core's paired users point at each other. With CPython's default thresholds (700, 10, 10)
a young collection runs every few hundred joins and, as the population grows, full
collections walk every live session again and again: at 300,000 joins that is about a
third of the core's time (benchmarks/core_throughput.py prints both). The server freezes
what start-up built (imports, settings: never garbage) out of the collector's view and
lets more objects be allocated between young collections. Reference counting still
frees almost everything at once; the collector only finds cycles, and sessions break
theirs when they end. `--gc-threshold 0` keeps Python's defaults.
"""
from __future__ import annotations

import gc

DEFAULT_THRESHOLD = 5_000
#: Older generations are collected as often relative to the young one as by default (x10).
OLDER = (10, 10)


def apply(threshold: int = DEFAULT_THRESHOLD) -> tuple[int, int, int]:
    """Freeze start-up objects and set the young-generation threshold; returns the thresholds.

    0 leaves the collector as Python set it. Call it once, after imports and before serving.
    """
    if threshold < 0:
        raise ValueError("gc threshold must be >= 0")
    if threshold:
        gc.collect()
        gc.freeze()
        gc.set_threshold(threshold, *OLDER)
    return gc.get_threshold()
