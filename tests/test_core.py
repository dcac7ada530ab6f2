"""Unit tests of the pairing core: each queue rule in a scenario built to expose it."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.core_impls import IMPLS

CORE = Path(__file__).resolve().parent.parent / "reference_server" / "core.py"


@pytest.fixture(params=sorted(IMPLS), autouse=True)
def impl(request):
    """Every test runs on the imported core (compiled when built) and on the .py source."""
    global PairingCore, Paired, PartnerLeft, StateError, Waiting
    m = IMPLS[request.param]
    PairingCore, Paired, PartnerLeft, StateError, Waiting = (
        m.PairingCore, m.Paired, m.PartnerLeft, m.StateError, m.Waiting)
    return m


def pairs(effects) -> list[frozenset]:
    return [frozenset((e.a, e.b)) for e in effects if isinstance(e, Paired)]


def test_first_come_first_served_among_open_users_blocked_from_each_other():
    core = PairingCore(rematch_block=10)
    core.join("a", 0)
    core.join("b", 1)
    # a skips b: both end up waiting, blocked from each other, a first.
    assert core.next("a", 2) == [PartnerLeft("b", "next"), Waiting("a")]
    assert core.join("b", 3) == [Waiting("b")]
    assert pairs(core.join("c", 4)) == [frozenset("ac")]
    assert pairs(core.join("d", 5)) == [frozenset("bd")]


def test_oldest_user_sharing_any_interest_wins():
    core = PairingCore(interest_fallback=100)
    core.join("x", 0, interests=["a"])
    core.join("y", 1, interests=["b"])
    effects = core.join("n", 2, interests=["b", "a"])
    assert pairs(effects) == [frozenset("xn")]
    assert effects[0].common == ("a",)


def test_common_lists_every_shared_interest():
    core = PairingCore()
    core.join("x", 0, interests=["music", "cats", "go"])
    (p,) = core.join("y", 1, interests=["cats", "chess", "music"])
    assert sorted(p.common) == ["cats", "music"]


def test_interest_user_does_not_take_open_user_before_fallback():
    core = PairingCore(interest_fallback=5)
    core.join("open", 0)
    assert core.join("fan", 1, interests=["jazz"]) == [Waiting("fan")]
    assert core.next_wakeup() == 6
    assert core.tick(5.9) == []
    (p,) = core.tick(6)
    assert {p.a, p.b} == {"open", "fan"} and p.common == ()


def test_fallback_pairs_two_waiting_interest_users_without_new_arrival():
    core = PairingCore(interest_fallback=5)
    core.join("x", 0, interests=["a"])
    core.join("y", 2, interests=["b"])
    assert core.tick(5) == []  # x is open, y not yet
    assert pairs(core.tick(7)) == [frozenset("xy")]
    assert core.next_wakeup() is None


def test_no_rematch_within_block_then_paired_when_it_expires():
    core = PairingCore(rematch_block=10)
    core.join("a", 0)
    core.join("b", 0)
    core.next("a", 1)
    assert core.join("b", 2) == [Waiting("b")]
    assert core.next_wakeup() == 11
    assert core.tick(10.9) == []
    assert pairs(core.tick(11)) == [frozenset("ab")]


def test_commands_run_due_timers_first():
    core = PairingCore(interest_fallback=1)
    core.join("x", 0, interests=["a"])
    # The caller was late to tick: the join still sees x as open (its fallback passed).
    assert pairs(core.join("y", 3)) == [frozenset("xy")]


def test_pools_are_separate():
    core = PairingCore()
    assert core.join("t", 0, mode="text") == [Waiting("t")]
    assert core.join("v", 0, mode="video") == [Waiting("v")]
    assert core.join("d", 0, mode="text", lang="de") == [Waiting("d")]
    assert core.waiting_by_pool() == {("text", "en"): 1, ("video", "en"): 1, ("text", "de"): 1}
    (p,) = core.join("v2", 1, mode="video")
    assert p.mode == "video" and {p.a, p.b} == {"v", "v2"}


def test_exactly_one_initiator():
    core = PairingCore()
    core.join("a", 0, mode="video")
    (p,) = core.join("b", 1, mode="video")
    assert p.initiator in ("a", "b")
    assert p.waited_a == 1 and p.waited_b == 0


def test_disconnect_leaves_queue_at_once_and_tells_partner():
    core = PairingCore()
    core.join("a", 0)
    assert core.disconnect("a", 1) == []
    assert core.join("b", 2) == [Waiting("b")]
    core.join("c", 3)
    assert core.disconnect("b", 4) == [PartnerLeft("c", "disconnect")]
    assert core.state("c") == "idle" and core.state("b") == "idle"
    assert core.waiting_count == 0 and core.paired_count == 0


def test_leave_reasons_reach_partner():
    for reason in ("leave", "report", "banned"):
        core = PairingCore()
        core.join("a", 0)
        core.join("b", 0)
        assert core.leave("a", 1, reason) == [PartnerLeft("b", reason)]
    with pytest.raises(ValueError):
        PairingCore().leave("a", 0, "bogus")


def test_next_while_waiting_keeps_place():
    core = PairingCore(rematch_block=0)
    core.join("a", 0)
    assert core.next("a", 1) == [Waiting("a")]
    assert pairs(core.join("b", 2))[0] == frozenset("ab")


def test_state_errors():
    core = PairingCore()
    with pytest.raises(StateError):
        core.next("nobody", 0)
    with pytest.raises(StateError):
        core.leave("nobody", 0)
    core.join("a", 0)
    with pytest.raises(StateError):
        core.join("a", 1)


def test_time_going_backwards_is_clamped():
    core = PairingCore(interest_fallback=5)
    core.join("x", 10, interests=["a"])
    core.join("y", 3, interests=["b"])  # clamped to 10: fallback due at 15, not 8
    assert core.tick(9) == []
    assert pairs(core.tick(15)) == [frozenset("xy")]


def test_large_queue_does_not_slow_a_join_down():
    """Joins touch O(1) users whatever waits: counted via the open queue's size, not time."""
    core = PairingCore(interest_fallback=1e9)
    for i in range(20_000):
        core.join(f"i{i}", 0, interests=[f"topic{i}"])  # all waiting, pairwise incompatible
    pool = core._pools[("text", "en")]
    assert len(pool.open) == 0 and core.waiting_count == 20_000
    core.join("a", 1)
    assert pairs(core.join("b", 1)) == [frozenset("ab")]


def test_core_is_pure():
    """No asyncio, threading, multiprocessing or I/O modules in the core, directly or not."""
    tree = ast.parse(CORE.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    forbidden = {"asyncio", "threading", "multiprocessing", "socket", "time", "os", "concurrent", "select"}
    assert not imported & forbidden, imported & forbidden
    code = (
        "import sys; before = set(sys.modules); import reference_server.core; "
        "print(sorted({'asyncio', 'threading', 'multiprocessing'} & (set(sys.modules) - before)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_users_opening_at_the_same_instant_are_served_in_join_order():
    """Found by the stateful test: x and y open together; x (first joiner) gets y, who
    joined before the open user z, rather than z."""
    core = PairingCore(interest_fallback=2, rematch_block=0)
    core.join("x", 0, interests=["a"])
    core.join("y", 0, interests=["b"])
    core.join("z", 0)
    assert pairs(core.tick(2)) == [frozenset("xy")]
    assert core.state("z") == "waiting"


def test_a_block_only_keeps_the_two_skipped_users_apart():
    """v skipped w: v may not meet w for 5 s, but meets u, who shares another interest."""
    core = PairingCore(interest_fallback=1000, rematch_block=5)
    core.join("v", 0, interests=["a", "b"])
    core.join("w", 0, interests=["a"])  # w pairs with v at once
    core.next("v", 1)  # v re-queues, blocked from w until 6
    assert core.join("w", 1, interests=["a"]) == [Waiting("w")]  # shares a with v, but blocked
    core.join("u", 2, interests=["b"])
    assert core.partner("u") == "v" and core.state("w") == "waiting"


def test_effects_behave_like_the_tuples_of_their_fields():
    """Effects are slotted classes (fast to build when compiled) that still compare, hash,
    print and unpack like the NamedTuples callers were written against."""
    p = Paired("a", "b", "p1", "video", ("jazz",), "a", 1.5, 0.0)
    assert p == Paired("a", "b", "p1", "video", ("jazz",), "a", 1.5, 0.0)
    assert p != Paired("a", "c", "p1", "video", ("jazz",), "a", 1.5, 0.0)
    assert hash(p) == hash(Paired("a", "b", "p1", "video", ("jazz",), "a", 1.5, 0.0))
    a, b, pair_id, mode, common, initiator, waited_a, waited_b = p
    assert (a, b, pair_id, mode, common, initiator, waited_a, waited_b) == ("a", "b", "p1", "video", ("jazz",), "a", 1.5, 0.0)
    assert p[0] == "a" and p[4] == ("jazz",) and len(p) == 8
    assert p.waited_a == 1.5 and p.initiator == "a"
    assert repr(p) == "Paired(a='a', b='b', pair_id='p1', mode='video', common=('jazz',), initiator='a', waited_a=1.5, waited_b=0.0)"
    assert Waiting("x") != PartnerLeft("x", "next") and Waiting("x") != ("x",)
    assert {Waiting("x"), Waiting("x"), PartnerLeft("x", "next")} == {Waiting("x"), PartnerLeft("x", "next")}
    assert repr(PartnerLeft("x", "next")) == "PartnerLeft(user='x', reason='next')"
    with pytest.raises(AttributeError):
        p.extra = 1  # slotted: no stray attributes
