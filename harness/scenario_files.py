"""Find, check and parameterise scenario files before any process is started.

`chatload run` must fail fast with a clear message (exit code 2) on an unknown scenario,
a file that does not compile or import, a file without a Locust User class, or a bad
parameter; finding that out after the server and a swarm have started would waste a
minute and bury the message in a Locust log. The import check runs in a subprocess
because importing a scenario imports locust, which gevent-monkey-patches the process.
"""
from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PARAM_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
INSPECT_TIMEOUT_S = 60.0


class ScenarioError(Exception):
    """A usage or scenario problem, reported to the user as-is (exit code 2)."""


@dataclass
class Scenario:
    """A checked scenario file and what its import revealed."""

    name: str
    path: Path
    user_classes: list[str] = field(default_factory=list)
    has_shape: bool = False
    # The scenario's suggested run shape (module-level RUN_DEFAULTS: users, spawn_rate,
    # duration_s); command-line options win.
    run_defaults: dict[str, float] = field(default_factory=dict)
    # Flags the scenario wants on the embedded reference server (module-level SERVER_ARGS,
    # computed at import with the run's CHATLOAD_SCENARIO_PARAMS, so they follow --param).
    server_args: list[str] = field(default_factory=list)


def scenarios_dir() -> Path:
    """The directory of the `scenarios` package, found without importing it."""
    spec = importlib.util.find_spec("scenarios")
    if spec is None or not spec.submodule_search_locations:
        raise ScenarioError("the 'scenarios' package is not installed")
    return Path(list(spec.submodule_search_locations)[0])


def available() -> list[str]:
    """Names of the bundled scenarios (files in the scenarios package)."""
    try:
        folder = scenarios_dir()
    except ScenarioError:
        return []
    return sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_"))


def resolve(spec: str) -> Path:
    """A scenario name (`smoke`) or a path to a .py file -> an existing file path."""
    looks_like_path = spec.endswith(".py") or os.sep in spec or "/" in spec
    if looks_like_path:
        path = Path(spec).expanduser()
        if not path.is_file():
            raise ScenarioError(f"scenario file not found: {spec}")
        return path.resolve()
    if not NAME_RE.match(spec):
        raise ScenarioError(f"bad scenario name {spec!r}: use a bundled name or a path to a .py file")
    path = scenarios_dir() / f"{spec}.py"
    if not path.is_file() or spec.startswith("_"):
        names = ", ".join(available()) or "(none installed)"
        raise ScenarioError(f"unknown scenario {spec!r}; bundled scenarios: {names}; or pass a path to a .py file")
    return path


def check_syntax(path: Path) -> ast.Module:
    """Compile the file; a syntax error becomes a one-line message with file:line."""
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"cannot read scenario {path}: {exc}") from None
    try:
        return ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        where = f"{path}:{exc.lineno}" if exc.lineno else str(path)
        raise ScenarioError(f"syntax error in scenario {where}: {exc.msg}") from None


# Runs in a fresh interpreter: import the file the way Locust does and list what it holds
# (User classes, shapes, RUN_DEFAULTS, SERVER_ARGS). It gets the run's
# CHATLOAD_SCENARIO_PARAMS, so SERVER_ARGS computed at import follow --param overrides.
_INSPECT = r"""
import json, os, sys, traceback
from locust.util.load_locustfile import load_locustfile
path = sys.argv[1]
try:
    users, shapes = load_locustfile(path)
except BaseException as exc:  # SystemExit from a scenario counts too
    frames = traceback.extract_tb(exc.__traceback__)
    where = next((f"{f.filename}:{f.lineno}" for f in reversed(frames) if f.filename == path), None)
    print("CHATLOAD-INSPECT-ERROR " + json.dumps({"error": f"{type(exc).__name__}: {exc}", "where": where}))
    sys.exit(1)
name = os.path.splitext(os.path.basename(path))[0]
module = sys.modules.get("locustfile" if name == "locust" else name)
defaults = getattr(module, "RUN_DEFAULTS", None)
defaults = {k: v for k, v in defaults.items() if isinstance(v, (int, float))} if isinstance(defaults, dict) else {}
server_args = getattr(module, "SERVER_ARGS", None)
if server_args is not None and (not isinstance(server_args, (list, tuple)) or not all(isinstance(a, str) for a in server_args)):
    print("CHATLOAD-INSPECT-ERROR " + json.dumps({"error": f"SERVER_ARGS must be a list of strings, got {server_args!r}", "where": None}))
    sys.exit(1)
print("CHATLOAD-INSPECT " + json.dumps({"users": sorted(users), "shapes": len(shapes), "defaults": defaults,
                                        "server_args": list(server_args or [])}))
"""
RUN_DEFAULT_KEYS = ("users", "spawn_rate", "duration_s")


def inspect(path: Path, env: dict[str, str], timeout: float = INSPECT_TIMEOUT_S) -> Scenario:
    """Import the scenario in a subprocess; it must define at least one Locust User class."""
    clean_env = {k: v for k, v in env.items() if k != "CHATLOAD_OUT"}
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _INSPECT, str(path)],
            env=clean_env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=path.parent,
        )
    except subprocess.TimeoutExpired:
        raise ScenarioError(f"importing scenario {path} took over {timeout:.0f}s") from None
    report = failure = None
    for line in proc.stdout.splitlines():
        if line.startswith("CHATLOAD-INSPECT "):
            report = json.loads(line.split(" ", 1)[1])
        elif line.startswith("CHATLOAD-INSPECT-ERROR "):
            failure = json.loads(line.split(" ", 1)[1])
    if failure is not None:
        where = f" (at {failure['where']})" if failure.get("where") else ""
        raise ScenarioError(f"scenario {path} failed to import{where}: {failure['error']}")
    if proc.returncode != 0 or report is None:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        last = lines[-1] if lines else f"exit code {proc.returncode}"
        tail = "\n".join("    " + line for line in lines[-8:])
        raise ScenarioError(f"scenario {path} failed to import: {last}\n{tail}")
    if not report["users"]:
        raise ScenarioError(f"scenario {path} defines no Locust User class (a subclass of locust.User with tasks)")
    defaults = {k: v for k, v in report.get("defaults", {}).items() if k in RUN_DEFAULT_KEYS and v > 0}
    return Scenario(
        name=path.stem,
        path=path,
        user_classes=report["users"],
        has_shape=report["shapes"] > 0,
        run_defaults=defaults,
        server_args=list(report.get("server_args", [])),
    )


def parse_value(text: str) -> Any:
    """A --param value: a TOML/JSON literal when it parses as one (3, 0.5, true, [1,2]), else a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        pass
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_param(item: str) -> tuple[str, Any]:
    """`KEY=VALUE` -> (key, value); anything else is a usage error."""
    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ScenarioError(f"bad --param {item!r}: expected KEY=VALUE")
    if not PARAM_KEY_RE.match(key):
        raise ScenarioError(f"bad --param key {key!r}: letters, digits, '_', '-' and '.' only")
    return key, parse_value(value.strip())


def load_params_file(path: str) -> dict[str, Any]:
    """A TOML file of scenario overrides (top-level keys; a [params] table is also accepted)."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ScenarioError(f"params file not found: {path}") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ScenarioError(f"bad params file {path}: {exc}") from None
    if set(data) == {"params"} and isinstance(data["params"], dict):
        data = data["params"]
    return data


def build_params(files: list[str], items: list[str]) -> dict[str, Any]:
    """Files in order, then each --param on top (later wins)."""
    params: dict[str, Any] = {}
    for path in files:
        params.update(load_params_file(path))
    for item in items:
        key, value = parse_param(item)
        params[key] = value
    try:
        json.dumps(params)
    except (TypeError, ValueError) as exc:  # TOML dates and the like
        raise ScenarioError(f"scenario parameters must be JSON-serialisable: {exc}") from None
    return params
