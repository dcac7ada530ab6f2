"""Will a simulation fit in memory? An estimate from the plan, before the run.

Why: a day of 3M daily users peaks at 8.2 GB in each of its 2 processes; a larger
`--dau` on a 24 GB machine would be killed for memory a minute in, after the wait. The
tickets a run makes are about the chats its visits plan (86.5M planned, 85.4M simulated
for that day), and the kernel plus the fairness analysis peak at about 200 bytes per
ticket over all processes together (they run at the same time). The Python engine needs
several times more: the estimate is then a lower bound.
"""
from __future__ import annotations

from typing import Any

#: Peak bytes per ticket, all processes together (measured: 2 x 8.2 GB for 85.4M tickets).
BYTES_PER_TICKET = 200


def estimate_bytes(plan: Any) -> int:
    return int(plan.chats.sum()) * BYTES_PER_TICKET if plan.n else 0


def available_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (None where there is none)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def warning(plan: Any, available: int | None = None) -> str | None:
    """A sentence for stderr when the run would likely not fit, else None."""
    need = estimate_bytes(plan)
    have = available_bytes() if available is None else available
    if have is None or need <= have:
        return None
    return (f"this run will likely need about {need / 1e9:.1f} GB ({int(plan.chats.sum()):,} chats planned, "
            f"~{BYTES_PER_TICKET} bytes each at the peak) and {have / 1e9:.1f} GB is available: "
            f"a process may be killed for memory; a smaller --dau or --hours fits")
