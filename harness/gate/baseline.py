"""Baseline files: one or several results of an unchanged backend, with the environment
they were measured in.

Why the environment: a baseline measured on a laptop says little about a CI runner; the
gate prints a note when the CPU model, CPU count or Python version differ, so a
surprising failure can be traced to a machine change rather than a code change.

File shape (JSON):
    {"chatload_baseline": 1, "environment": {...}, "sources": ["results.json", ...],
     "runs": [<results dict>, ...]}
Per-ticket records (`tickets`, possibly large) are dropped from the stored runs; the
figures, summaries and raw histograms the gate needs are kept. A plain results.json
is also accepted as a one-run baseline.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = 1
DROPPED_KEYS = ("tickets",)


class BaselineError(ValueError):
    """A baseline or results file that cannot be read or used."""


@dataclass(frozen=True)
class Baseline:
    runs: list[dict[str, Any]]
    environment: dict[str, Any] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)


def cpu_model() -> str:
    """The CPU's marketing name where the OS tells it, else platform.processor()."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "Model") and value.strip():
                    return value.strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        try:
            return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                                  text=True, timeout=5).stdout.strip() or platform.processor()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown"


def chatload_version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version("chatload")
    except PackageNotFoundError:
        pass
    # Running from a checkout that is not pip-installed: read the project file.
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    try:
        import tomllib

        return str(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"]) + "+checkout"
    except (OSError, KeyError, ValueError):
        return "unknown"


def git_commit(cwd: str | Path | None = None) -> str | None:
    """The commit checked out in `cwd` (the backend under test, in CI), else the CI's own variable."""
    try:
        proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
        if proc.returncode == 0 and proc.stdout.strip():
            return proc.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return os.environ.get("GITHUB_SHA") or os.environ.get("CI_COMMIT_SHA") or None


def collect_environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "chatload_version": chatload_version(),
        "git_commit": git_commit(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def read_results(path: str | Path) -> dict[str, Any]:
    """A results.json as a dict, or BaselineError with a clear reason."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BaselineError(f"cannot read {str(p)!r}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BaselineError(f"{p.name}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BaselineError(f"{p.name}: expected a JSON object (a results file), got {type(data).__name__}")
    return data


def make_baseline(runs: Sequence[Mapping[str, Any]], sources: Sequence[str] = ()) -> dict[str, Any]:
    if not runs:
        raise BaselineError("a baseline needs at least one results file")
    for i, run in enumerate(runs):
        if "chatload_baseline" in run:
            name = Path(sources[i]).name if i < len(sources) else f"input #{i + 1}"
            raise BaselineError(f"{name}: is already a baseline, not a results file")
    stored = [{k: v for k, v in run.items() if k not in DROPPED_KEYS} for run in runs]
    return {
        "chatload_baseline": FORMAT,
        "environment": collect_environment(),
        "sources": [Path(s).name for s in sources],
        "runs": stored,
    }


def save_baseline(result_paths: Sequence[str | Path], out: str | Path) -> dict[str, Any]:
    """Read results files, write the baseline to `out`, and return it."""
    runs = [read_results(p) for p in result_paths]
    data = make_baseline(runs, [str(p) for p in result_paths])
    out_path = Path(out)
    if out_path.parent and not out_path.parent.exists():
        out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    return data


def parse_baseline(data: Mapping[str, Any], name: str = "baseline") -> Baseline:
    if "chatload_baseline" not in data:
        return Baseline(runs=[dict(data)], environment={}, sources=[name])  # a plain results file
    if data["chatload_baseline"] != FORMAT:
        raise BaselineError(f"{name}: baseline format {data['chatload_baseline']!r} is not supported (expected {FORMAT})")
    runs = data.get("runs")
    if not isinstance(runs, list) or not runs or not all(isinstance(r, dict) for r in runs):
        raise BaselineError(f"{name}: 'runs' must be a non-empty list of results objects")
    env = data.get("environment") if isinstance(data.get("environment"), dict) else {}
    return Baseline(runs=runs, environment=env, sources=list(data.get("sources") or []))


def load_baseline(path: str | Path) -> Baseline:
    return parse_baseline(read_results(path), Path(path).name)


def environment_notes(stored: Mapping[str, Any], current: Mapping[str, Any] | None = None) -> list[str]:
    """Differences between the baseline's machine and this one that can explain a failure."""
    if not stored:
        return []
    now = current if current is not None else collect_environment()
    notes = []
    for key, label in (("cpu_model", "CPU model"), ("cpu_count", "CPU count"), ("python", "Python")):
        if key in stored and stored.get(key) != now.get(key):
            notes.append(f"baseline {label} {stored.get(key)!r} differs from this machine's {now.get(key)!r}")
    return notes
