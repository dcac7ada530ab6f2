"""When a video chat's user sends its WebRTC signals: the offer, then ICE candidates.

Why a module: both kinds of virtual user (the steady `ChatUser` and the population's
`PopulationUser`) signal the same way inside their own chat loops. The initiator sends
the offer first; ICE candidates follow every `interval_s`, once the offer went out (or,
for the answerer, once the reader answered the partner's offer). No I/O here: `step`
calls the user's send.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable


@dataclass
class VideoSignals:
    video: bool           # both the chat and the user's session are video
    initiator: bool       # this side sends the offer
    ice_left: int         # ICE candidates still to send
    interval_s: float     # between candidates
    next_ice: float       # time.monotonic() at which the next candidate may go
    offer_sent: bool = False

    def ice_ready(self, answered_offer: bool) -> bool:
        return self.video and self.ice_left > 0 and (self.offer_sent or answered_offer)

    def step(self, now: float, answered_offer: bool, send: Callable[[str], Any]) -> bool:
        """Send the signal that is due, if any (True: one was sent; the caller re-checks its chat)."""
        if self.video and self.initiator and not self.offer_sent:
            self.offer_sent = True
            send("offer")
            self.next_ice = time.monotonic() + self.interval_s   # after the send, which may yield
            return True
        if self.ice_ready(answered_offer) and now >= self.next_ice:
            self.ice_left -= 1
            self.next_ice = now + self.interval_s
            send("ice")
            return True
        return False

    def wake(self, now: float, wake: float, answered_offer: bool) -> float:
        """The chat loop's next wake-up, brought forward for a candidate due sooner."""
        if self.ice_ready(answered_offer):
            return min(wake, self.next_ice)
        if self.video and self.ice_left > 0 and not self.initiator:
            return min(wake, now + 0.5)   # the answer is sent by the reader; look again soon
        return wake
