"""The C galloping search (harness/fairness/_search.c) answers exactly as np.searchsorted.

Both ways merge_search can run (the C extension, the numpy merge) are checked against
numpy itself on values built to collide: duplicates, -0.0 and 0.0, infinities, NaN (which
numpy sorts last), negative numbers, keys in any order, a subtracted `minus`, int32 and
int64 answers.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.fairness import search
from harness.simulate import kernel

FLOATS = [-np.inf, -2.5, -1.0, -0.0, 0.0, 0.25, 0.5, 1.0, 3.0, np.inf, np.nan]
needs_c = pytest.mark.skipif(search._c is None, reason="harness.fairness._search is not built (pip install -e .)")


@pytest.fixture(params=["c", "numpy"])
def impl(request, monkeypatch):
    if request.param == "c":
        if search._c is None:
            pytest.skip("harness.fairness._search is not built (pip install -e .)")
    else:
        monkeypatch.setattr(search, "_c", None)
        monkeypatch.setattr(search, "CHUNK", 8)    # many chunks and outliers on small inputs
        monkeypatch.setattr(search, "STRETCH", 1)
    return request.param


def expected(a: np.ndarray, keys: np.ndarray, side: str, minus: float) -> list[int]:
    with np.errstate(invalid="ignore"):
        return np.searchsorted(a, keys - minus if minus else keys, side=side).tolist()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=st.lists(st.sampled_from(FLOATS), max_size=60), keys=st.lists(st.sampled_from(FLOATS), max_size=60),
       side=st.sampled_from(["left", "right"]), minus=st.sampled_from([0.0, 0.0, 0.5, -1.0, np.inf]),
       sort_keys=st.booleans(), dtype=st.sampled_from([np.int32, np.int64]))
def test_float_search_is_searchsorted(impl, a, keys, side, minus, sort_keys, dtype):
    arr = np.sort(np.asarray(a, dtype=np.float64))
    k = np.asarray(keys, dtype=np.float64)
    if sort_keys:
        k = np.sort(k)
    got = search.merge_search(arr, k, side=side, dtype=dtype, minus=minus)
    assert got.dtype == dtype
    assert got.tolist() == expected(arr, k, side, minus)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=st.lists(st.integers(-6, 6), max_size=80), keys=st.lists(st.integers(-9, 9), max_size=80),
       side=st.sampled_from(["left", "right"]), sort_keys=st.booleans())
def test_int_search_is_searchsorted(impl, a, keys, side, sort_keys):
    arr = np.sort(np.asarray(a, dtype=np.int64))
    k = np.asarray(keys, dtype=np.int64)
    if sort_keys:
        k = np.sort(k)
    assert search.merge_search(arr, k, side=side).tolist() == np.searchsorted(arr, k, side=side).tolist()


def test_nearly_sorted_keys_far_and_near(impl):
    """The analysis's shape: a long sorted array, keys close to sorted with a few far jumps."""
    rng = np.random.default_rng(5)
    a = np.sort(rng.exponential(1.0, 200_000)).round(3)          # many ties
    k = a + rng.normal(0.0, 0.01, a.size)
    k[::997] = rng.uniform(-1.0, 20.0, k[::997].size)            # outliers both ways
    for side in ("left", "right"):
        assert np.array_equal(search.merge_search(a, k, side=side, dtype=np.int32), np.searchsorted(a, k, side=side))


def test_non_contiguous_inputs_are_searched_as_numpy_does(impl):
    a = np.arange(0.0, 100.0, 0.5)
    keys = np.arange(100.0, 0.0, -0.75)[::3]                        # a strided view, descending
    assert search.merge_search(a[::2], keys, "right").tolist() == np.searchsorted(a[::2], keys, "right").tolist()


@needs_c
def test_c_search_rejects_bad_arguments_clearly():
    a, k = np.arange(4.0), np.arange(3.0)
    with pytest.raises(TypeError, match="float64 or both int64"):
        search._c.searchsorted(a, k.astype(np.int64), False, 0.0, np.empty(3, np.int64))
    with pytest.raises(TypeError, match="one slot per key"):
        search._c.searchsorted(a, k, False, 0.0, np.empty(2, np.int64))
    with pytest.raises(TypeError, match="int64 or int32"):
        search._c.searchsorted(a, k, False, 0.0, np.empty(3, np.float64))
    with pytest.raises(TypeError, match="minus applies"):
        search._c.searchsorted(a.astype(np.int64), k.astype(np.int64), False, 1.0, np.empty(3, np.int64))
    with pytest.raises(ValueError, match="one-dimensional"):
        search._c.searchsorted(np.zeros((2, 2)), k, False, 0.0, np.empty(3, np.int64))


def test_ci_builds_the_c_extensions():
    """CI installs with `pip install -e .`: a silent compile failure would only show as slowness."""
    if os.environ.get("CI") != "true":
        pytest.skip("only CI promises a compiler")
    assert search._c is not None, "harness.fairness._search did not compile"
    assert kernel._kernel is not None, "harness.simulate._kernel did not compile"
