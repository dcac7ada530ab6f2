"""One event-loop timer kept at the pairing core's next wakeup.

The core has no clock (reference_server/core.py): it says when `tick` must run next. The
single-process hub and the multi-process core owner both keep exactly one loop timer at
that instant and hand the tick's effects to their own dispatcher.
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from .core import Effect, PairingCore


class CoreTimer:
    def __init__(self, loop: asyncio.AbstractEventLoop, clock: Callable[[], float], core: PairingCore,
                 on_effects: Callable[[list[Effect]], None]) -> None:
        self.loop = loop
        self.clock = clock
        self.core = core
        self.on_effects = on_effects
        self._handle: asyncio.TimerHandle | None = None
        self._at: float | None = None

    def arm(self) -> None:
        """Re-aim the timer after anything that may have changed the core's next wakeup."""
        at = self.core.next_wakeup()
        if at == self._at:
            return
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._at = at
        if at is not None:
            # +1 ms: loop timers may round to milliseconds and fire a hair early.
            self._handle = self.loop.call_later(max(0.0, at - self.clock()) + 0.001, self._fire)

    def _fire(self) -> None:
        self._handle = None
        self._at = None
        self.on_effects(self.core.tick(self.clock()))
        self.arm()
