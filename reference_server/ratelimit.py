"""A token bucket, pure: the caller passes the clock, so it is testable and lock-free."""
from __future__ import annotations


class TokenBucket:
    """Allows `burst` events at once and `rate` events per second sustained.

    `take(now)` spends one token if there is one. Time is any monotonic float in seconds.
    """

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = float(rate)
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = now

    def take(self, now: float, cost: float = 1.0) -> bool:
        """Spend `cost` tokens if available; return whether the event is allowed."""
        elapsed = now - self.stamp
        if elapsed > 0:
            self.stamp = now
            tokens = self.tokens + elapsed * self.rate
            self.tokens = tokens if tokens < self.burst else self.burst
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False

    def available(self, now: float) -> float:
        """Tokens available at `now`, without spending any."""
        elapsed = max(0.0, now - self.stamp)
        return min(self.burst, self.tokens + elapsed * self.rate)
