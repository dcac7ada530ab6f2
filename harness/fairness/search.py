"""`np.searchsorted` for many nearly sorted keys, by merging instead of binary searching.

Why: at tens of millions of elements a binary search costs 25-70 ns per key even when
the keys come sorted (a cache miss and a mispredicted branch per level), while a stable
sort of two sorted runs is one linear merge, a few ns per element. The analysis asks
tens of millions of such questions (ranks of times, prefix ends of candidate lists), and
its keys come nearly sorted because tickets are in join order.

How: keys are taken a chunk at a time, sorted (cheap: nearly sorted already), and merged
with the stretch of the array they fall in. Each element gets one flag bit below its
value so that a key sorts before (side="left") or after (side="right") an equal array
element; the key's count is then its position in the merge minus the keys before it.
Non-negative int64 and non-negative float64 (whose bit patterns, read as integers, sort
like the values) have that spare bit; anything else falls back to np.searchsorted, as do
keys far from the rest of their chunk.

In C: when the extension `_search` is built (`pip install -e .`), a search gallops from
the previous key's answer instead (`_search.c`: a few comparisons per nearly sorted key,
no sort, no temporaries), several times faster again. CHATLOAD_FAIRNESS_C=0 keeps the
numpy merge. Both give exactly np.searchsorted's answer (tests/test_fairness_search_c.py).
"""
from __future__ import annotations

import os
from typing import Any, Literal

import numpy as np

_c: Any
try:
    from . import _search as _c  # type: ignore[attr-defined,no-redef]  # the C extension, no stubs
except ImportError:  # not built (pure-Python install, no compiler): the numpy merge runs
    _c = None
if os.environ.get("CHATLOAD_FAIRNESS_C", "1") == "0":
    _c = None

#: Keys per merge: the merge's arrays stay below glibc's mmap threshold (heap memory is reused).
CHUNK = 1 << 20
#: A chunk's keys are merged with at most this many array elements (more: binary search them).
STRETCH = 4


def _as_bits(x: np.ndarray, ascending: bool = False) -> np.ndarray | None:
    """Order-preserving uint64 view with the top bit free, or None if x has no such view.

    For an ascending x only its ends (and its zeros, where a -0.0 could hide) are looked at.
    """
    if not x.size:
        return x.view(np.uint64) if x.dtype in (np.float64, np.int64) else None
    if x.dtype == np.float64:
        if ascending:
            zeros = x[:int(np.searchsorted(x, 0.0, side="right"))]
            bad = bool(np.isnan(x[-1])) or bool(x[0] < 0) or bool(np.signbit(zeros).any())
        else:
            bad = bool(np.signbit(x).any()) or bool(np.isnan(x).any())
        return None if bad else x.view(np.uint64)     # negative, -0.0 or NaN: bit patterns do not sort
    if x.dtype == np.int64:
        low = int(x[0]) if ascending else int(x.min())
        return None if low < 0 else x.view(np.uint64)
    return None


def _sorted_with_order(kb: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """(order, kb[order]) for a chunk; the index packed below the key when it fits (a plain
    sort is ~4x faster than an argsort)."""
    if kb.size < 2 or bool(np.all(kb[1:] >= kb[:-1])):
        return None, kb
    ib = max(int(kb.size - 1).bit_length(), 1)
    if int(kb.max()) < (1 << (63 - ib)):
        packed = kb << np.uint64(ib)
        packed |= np.arange(kb.size, dtype=np.uint64)
        packed.sort()
        order = (packed & np.uint64((1 << ib) - 1)).astype(np.int64)
        packed >>= np.uint64(ib)
        return order, packed
    order = np.argsort(kb)
    return order, kb[order]


def merge_search(a: np.ndarray, keys: np.ndarray, side: Literal["left", "right"] = "left",
                 assume_sorted: bool = False, dtype: type = np.int64, minus: float = 0.0) -> np.ndarray:
    """Exactly np.searchsorted(a, keys - minus, side) for ascending `a` (int64 or float64, same
    dtype as keys), as `dtype` (int32 halves the memory of a 25M-element answer). `minus`
    is subtracted a chunk at a time (no full-size temporary; the same floats as keys - minus)."""
    if _c is not None and a.dtype == keys.dtype and a.dtype in (np.float64, np.int64) \
            and (not minus or a.dtype == np.float64) and np.dtype(dtype) in (np.int32, np.int64):
        found: np.ndarray = np.empty(keys.shape[0], dtype=dtype)
        _c.searchsorted(np.ascontiguousarray(a), np.ascontiguousarray(keys), side == "right", float(minus), found)
        return found
    if minus:
        if keys.dtype != np.float64:
            raise TypeError("minus applies to float64 keys")
        return _merge_search_minus(a, keys, side, assume_sorted, dtype, minus)
    out: np.ndarray = np.empty(keys.shape[0], dtype=dtype)
    if not keys.size:
        return out
    if keys.dtype != a.dtype or not a.size:
        out[:] = np.searchsorted(a, keys, side=side)
        return out
    abits = _as_bits(a, ascending=True)
    if abits is None:
        out[:] = np.searchsorted(a, keys, side=side)
        return out
    kflag, aflag = (np.uint64(0), np.uint64(1)) if side == "left" else (np.uint64(1), np.uint64(0))
    one = np.uint64(1)
    for i in range(0, keys.size, CHUNK):
        k = keys[i:i + CHUNK]
        kb = _as_bits(k)
        if kb is None:
            out[i:i + k.size] = np.searchsorted(a, k, side=side)
            continue
        order, ks = (None, kb) if assume_sorted else _sorted_with_order(kb)
        lo = int(np.searchsorted(a, ks[:1].view(k.dtype)[0], side=side))
        hi = min(lo + STRETCH * ks.size, a.size)
        # Keys whose answer is at most hi are merged with a[lo:hi]; the rest (outliers far
        # from the chunk) are binary searched. side left: k <= a[hi-1]; right: k < a[hi-1].
        cut = ks.size if hi == a.size else int(np.searchsorted(ks, abits[hi - 1], side="right" if side == "left" else "left"))
        res = np.empty(ks.size, dtype=np.int64)
        if cut < ks.size:
            res[cut:] = np.searchsorted(a, ks[cut:].view(k.dtype), side=side)
        if cut:
            head = ks[:cut]
            top = int(np.searchsorted(a, head[-1:].view(k.dtype)[0], side=side))
            merged = np.empty(cut + top - lo, dtype=np.uint64)
            np.left_shift(head, one, out=merged[:cut])
            merged[:cut] |= kflag
            np.left_shift(abits[lo:top], one, out=merged[cut:])
            merged[cut:] |= aflag
            merged.sort(kind="stable")
            at = np.flatnonzero((merged & one) == kflag)
            del merged
            at -= np.arange(cut)
            at += lo
            res[:cut] = at
        if order is None:
            out[i:i + k.size] = res
        else:
            out[i + order] = res
    return out


def _merge_search_minus(a: np.ndarray, keys: np.ndarray, side: Literal["left", "right"], assume_sorted: bool,
                        dtype: type, minus: float) -> np.ndarray:
    out: np.ndarray = np.empty(keys.shape[0], dtype=dtype)
    for i in range(0, keys.size, CHUNK):
        with np.errstate(invalid="ignore"):          # inf - inf is NaN, as in np.searchsorted(a, keys - minus)
            shifted = keys[i:i + CHUNK] - minus
        out[i:i + CHUNK] = merge_search(a, shifted, side, assume_sorted, dtype)
    return out
