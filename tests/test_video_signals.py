"""VideoSignals: the offer first (initiator only), then ICE candidates at their interval."""
from __future__ import annotations

from harness.video_signals import VideoSignals


def run(sig: VideoSignals, times: list[float], answered: bool = False) -> list[tuple[float, str]]:
    sent: list[tuple[float, str]] = []
    for now in times:
        sig.step(now, answered, lambda kind, now=now: sent.append((now, kind)))
    return sent


def test_initiator_sends_the_offer_then_candidates_at_the_interval():
    sig = VideoSignals(video=True, initiator=True, ice_left=3, interval_s=1.0, next_ice=0.0)
    sent = run(sig, [0.0, 0.1, 0.5, 1e9, 1e9 + 0.5, 1e9 + 1.0, 1e9 + 2.0, 1e9 + 3.0])
    kinds = [k for _, k in sent]
    assert kinds == ["offer", "ice", "ice", "ice"]          # never more than ice_left
    ice_times = [t for t, k in sent if k == "ice"]
    assert all(b - a >= 1.0 for a, b in zip(ice_times, ice_times[1:]))
    assert sig.ice_left == 0 and sig.wake(5.0, 9.0, False) == 9.0


def test_answerer_waits_for_the_answer_then_sends_candidates():
    sig = VideoSignals(video=True, initiator=False, ice_left=2, interval_s=0.5, next_ice=0.0)
    assert run(sig, [0.0, 1.0]) == []                      # no offer from this side, no answer yet
    assert sig.wake(1.0, 9.0, answered_offer=False) == 1.5  # looks again soon for the reader's answer
    assert run(sig, [2.0, 2.1, 2.6], answered=True) == [(2.0, "ice"), (2.6, "ice")]


def test_text_chats_send_nothing_and_keep_their_wake_up():
    sig = VideoSignals(video=False, initiator=True, ice_left=0, interval_s=0.5, next_ice=0.0)
    assert run(sig, [0.0, 10.0], answered=True) == []
    assert sig.wake(1.0, 7.0, True) == 7.0


def test_a_pending_candidate_brings_the_wake_up_forward():
    sig = VideoSignals(video=True, initiator=True, ice_left=2, interval_s=2.0, next_ice=0.0, offer_sent=True)
    sig.step(1.0, False, lambda kind: None)                # one candidate now, the next at 3.0
    assert sig.wake(1.0, 9.0, False) == 3.0
