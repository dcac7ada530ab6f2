"""The server's garbage-collector policy: applied by the server process, visible in /metrics."""
from __future__ import annotations

import subprocess
import sys
import urllib.request

import pytest

from reference_server.settings import Settings
from tests.support import reference_server


def _in_fresh_python(code: str) -> str:
    """gc settings are process-wide: never change the test process's own."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60).stdout


def test_apply_freezes_start_up_objects_and_sets_the_young_threshold():
    out = _in_fresh_python(
        "import gc; from reference_server import gc_policy; t = gc_policy.apply(1234); "
        "print(t, gc.get_freeze_count() > 1000)"
    )
    assert out.split() == ["(1234,", "10,", "10)", "True"]


def test_zero_keeps_pythons_defaults():
    out = _in_fresh_python(
        "import gc; d = gc.get_threshold(); from reference_server import gc_policy; "
        "print(gc_policy.apply(0) == d, gc.get_freeze_count())"
    )
    assert out.split() == ["True", "0"]


def test_a_negative_threshold_is_refused():
    with pytest.raises(ValueError, match="gc_threshold"):
        Settings(gc_threshold=-1)


def _metric(text: str, name: str, label: str) -> float:
    for line in text.splitlines():
        if line.startswith(f'{name}{{generation="{label}"}}'):
            return float(line.split()[-1])
    raise AssertionError(f"{name} generation {label} not in /metrics")


@pytest.mark.parametrize("threshold, expected", [("4321", 4321.0), ("0", 700.0)])
def test_the_server_runs_with_its_threshold_and_reports_collections(threshold, expected):
    with reference_server("--gc-threshold", threshold) as (base, _proc):
        text = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
    assert _metric(text, "chatload_server_gc_threshold", "0") == expected
    assert _metric(text, "chatload_server_gc_collections_total", "0") >= 0.0
