"""heap.retained: big blocks come from glibc's heap (not their own mmap) and are kept.

Checked through glibc's own accounting (mallinfo2: `hblkhd` is the bytes in mmap'd
blocks), in a fresh interpreter so the test process's allocator is left alone.
"""
from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import textwrap

import pytest

from harness.simulate import heap

from .support import ROOT

glibc = heap._libc() is not None and hasattr(ctypes.CDLL(None), "mallinfo2")
pytestmark = pytest.mark.skipif(not glibc, reason="glibc's mallopt and mallinfo2 are needed")

PROBE = textwrap.dedent("""
    import ctypes, os, numpy as np
    from harness.simulate import heap

    class Info(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in
                    "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = Info

    def mapped_and_heap(nbytes):
        a = np.ones(nbytes // 8)
        info = libc.mallinfo2()
        del a
        return info.hblkhd, libc.mallinfo2().arena

    print("before", *mapped_and_heap(200 << 20))
    with heap.retained() as active:
        print("active", int(active))
        print("inside", *mapped_and_heap(200 << 20))
        print("after_free", libc.mallinfo2().arena)
    print("restored", *mapped_and_heap(200 << 20))
""")


def run_probe(env_extra: dict[str, str] | None = None) -> dict[str, list[int]]:
    env = {**os.environ, **(env_extra or {})}
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60, check=True).stdout
    return {line.split()[0]: [int(x) for x in line.split()[1:]] for line in out.splitlines()}


def test_inside_big_blocks_come_from_the_heap_and_stay_there():
    r = run_probe()
    assert r["active"] == [1]
    assert r["before"][0] >= 200 << 20                  # by default: its own mmap
    mapped, arena = r["inside"]
    assert mapped < 1 << 20 and arena >= 200 << 20      # retained: from the heap
    assert r["after_free"][0] >= 200 << 20              # freed, but the heap kept it
    assert r["restored"][0] >= 200 << 20                # restored: mmap'd again
    assert r["restored"][1] < 200 << 20                 # and the heap was trimmed


def test_env_switch_turns_it_off():
    r = run_probe({heap.ENV: "0"})
    assert r["active"] == [0]
    assert r["inside"][0] >= 200 << 20
