"""Keep freed memory inside the process while a simulation and its analysis run.

Why: glibc gives every block over 32 MB its own mmap and unmaps it on free, and the
analysis of a day allocates and frees tens of GB of such blocks (full-size numpy
temporaries over 40M tickets). On a virtual machine whose host takes freed guest memory
back (free page reporting, ballooning: this project's machines do), memory touched again
after a few seconds costs 1-3 s of page faults per GB, about half of a day's CPU time.
With mmap off and heap trimming off, glibc serves those blocks from its heap and reuses
what was freed, so the same pages are touched again instead of fresh ones. Measured on a
day of 3M daily users: 55 s -> 47 s (docs/simulate.md, Speed).

Only glibc has `mallopt`; elsewhere this does nothing. The previous settings cannot be
read back, so `retained` restores glibc's default values and trims the heap afterwards
(glibc's sliding mmap threshold stays where it was: any mallopt call fixes it).
"""
from __future__ import annotations

import ctypes
import os
from contextlib import contextmanager
from typing import Any, Iterator

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
DEFAULT_TRIM_THRESHOLD, DEFAULT_MMAP_MAX = 128 * 1024, 65536
#: mallopt(3): a trim threshold of -1 disables trimming completely.
NEVER = -1
ENV = "CHATLOAD_SIM_RETAIN_HEAP"


def _libc() -> Any | None:
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.mallopt.restype = ctypes.c_int
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        return libc
    except (OSError, AttributeError):   # not glibc (musl, macOS): nothing to tune
        return None


def _set(libc: Any, trim: int, mmap_max: int) -> bool:
    return bool(libc.mallopt(M_TRIM_THRESHOLD, trim)) and bool(libc.mallopt(M_MMAP_MAX, mmap_max))


@contextmanager
def retained(restore: bool = True) -> Iterator[bool]:
    """Inside: big blocks come from the heap and freed memory stays in it (yields whether
    that took effect). `restore=False` suits a process that exits right after."""
    libc = _libc() if os.environ.get(ENV, "1") != "0" else None
    active = libc is not None and _set(libc, NEVER, 0)
    try:
        yield active
    finally:
        if active and restore and libc is not None:
            _set(libc, DEFAULT_TRIM_THRESHOLD, DEFAULT_MMAP_MAX)
            libc.malloc_trim(0)
