"""Reports counted against client addresses, and the bans they cause. Pure: time is passed in.

A report counts once per distinct reporting address within the window, and never when the
reporter shares the reported address: one abuser cannot ban a victim alone, and a load test
whose users all come from 127.0.0.1 never bans itself.
"""
from __future__ import annotations


class BanBook:
    """Tracks reports per reported address and the bans in force."""

    def __init__(self, threshold: int, window: float, duration: float) -> None:
        self.threshold = threshold
        self.window = window
        self.duration = duration
        self._reports: dict[str, dict[str, float]] = {}  # reported -> reporter -> last report time
        self._bans: dict[str, float] = {}  # address -> ban end

    def report(self, reporter: str, reported: str, now: float) -> bool:
        """Record a report; return True when it bans `reported` (starting now)."""
        if self.threshold <= 0 or reporter == reported or self.is_banned(reported, now):
            return False
        seen = self._reports.setdefault(reported, {})
        seen[reporter] = now
        horizon = now - self.window
        for key in [k for k, t in seen.items() if t < horizon]:
            del seen[key]
        if len(seen) >= self.threshold:
            del self._reports[reported]
            self._bans[reported] = now + self.duration
            return True
        return False

    def is_banned(self, address: str, now: float) -> bool:
        end = self._bans.get(address)
        if end is None:
            return False
        if now >= end:
            del self._bans[address]
            return False
        return True

    def sweep(self, now: float) -> None:
        """Forget expired bans and reports older than the window (bounded memory)."""
        for key in [k for k, end in self._bans.items() if now >= end]:
            del self._bans[key]
        horizon = now - self.window
        for reported in list(self._reports):
            seen = self._reports[reported]
            for key in [k for k, t in seen.items() if t < horizon]:
                del seen[key]
            if not seen:
                del self._reports[reported]

    @property
    def active_bans(self) -> int:
        return len(self._bans)
