"""`chatload run SCENARIO`: run a scenario swarm against a backend and write results.

Exit codes: 0 clean; 1 correctness violations, or a failed check with --gate; 2 a usage
or scenario error (or a swarm that could not run or finish: its Locust logs are named; a
bad --gate thresholds file or --baseline is found before anything starts); 3 the backend
could not be reached (before the start, or lost mid-run); 130 interrupted by Ctrl-C.
Whenever any results were gathered they are written and printed (and gated, with
--gate), whatever the exit code.

The embedded reference server (no --target) gets the scenario's SERVER_ARGS (computed
when the scenario is inspected, with the run's --param overrides), then every
--server-arg; with --target they are printed as a note, since the target is the user's.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import re
import shlex
import signal
import sys
from pathlib import Path

EXIT_OK, EXIT_VIOLATIONS, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([hms]?)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "": 1.0}


def parse_duration(text: str) -> float:
    """'30', '30s', '2m', '1h', '1m30s' -> seconds (> 0)."""
    s = text.strip().lower()
    pos, total, parts = 0, 0.0, 0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if not m or (m.group(2) == "" and (pos != 0 or m.end() != len(s))):
            raise argparse.ArgumentTypeError(f"bad duration {text!r}: use e.g. 30, 30s, 2m, 1m30s")
        total += float(m.group(1)) * _UNIT_S[m.group(2)]
        pos, parts = m.end(), parts + 1
    if parts == 0 or total <= 0:
        raise argparse.ArgumentTypeError(f"bad duration {text!r}: must be more than zero, e.g. 30s or 2m")
    return total


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def _seed(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", help="a bundled scenario name (e.g. smoke) or a path to a scenario .py file")
    parser.add_argument(
        "--target", metavar="URL",
        help="WebSocket URL of the backend (ws://host:port/ws); default: start the reference server on 127.0.0.1",
    )  # fmt: skip
    parser.add_argument("--users", type=_positive_int, default=None, help="concurrent virtual users (default: the scenario's, else 10)")
    parser.add_argument("--spawn-rate", type=_positive_float, default=None, help="users started per second (default: the scenario's, else all within about 1 s)")
    parser.add_argument("--duration", type=parse_duration, default=None, help="run time: 30, 30s, 2m, 1m30s (default: the scenario's, else 30s)")
    parser.add_argument("--workers", type=_positive_int, default=None, help="Locust worker processes (default: one per CPU core)")
    parser.add_argument("--seed", type=_seed, default=None, help="random seed (default: a random one, printed and recorded)")
    parser.add_argument("--out", metavar="DIR", default=None, help="output directory (default ./chatload-out/<timestamp>)")
    parser.add_argument("--param", metavar="KEY=VALUE", action="append", default=[], help="scenario parameter override (repeatable)")
    parser.add_argument("--params", metavar="FILE.toml", action="append", default=[], help="TOML file of scenario parameter overrides")
    parser.add_argument(
        "--unreachable-grace", type=_positive_float, default=10.0, metavar="SECONDS",
        help="stop the swarm once the backend has been unreachable this long (default 10)",
    )  # fmt: skip
    parser.add_argument(
        "--protocol", choices=["reference", "jsonws", "socketio", "omegle"], default=None,
        help="the backend's protocol (harness/adapters; default: the mapping's, else reference)",
    )  # fmt: skip
    parser.add_argument("--mapping", metavar="FILE.toml", default=None, help="the adapter's mapping of the backend's events (docs/adapters.md)")
    parser.add_argument("--progress-every", type=_positive_float, default=3.0, metavar="SECONDS", help=argparse.SUPPRESS)
    parser.add_argument(
        "--server-arg", metavar="ARG", action="append", default=[],
        help="extra flag(s) for the embedded reference server, after the scenario's own (repeatable; "
             "split like a shell: --server-arg '--rate-limit 0' or --server-arg=--trust-forwarded-for)",
    )  # fmt: skip
    gate = parser.add_argument_group("gating (docs/ci.md)")
    gate.add_argument("--gate", metavar="GATES.toml", default=None,
                      help="gate the results with these thresholds after the run (exit 1 when a check fails)")
    gate.add_argument("--baseline", metavar="BASE.json", default=None,
                      help="baseline for the relative checks (`chatload baseline save`); needs --gate")
    gate.add_argument("--junit", metavar="FILE", default=None,
                      help="where to write the gate's JUnit XML (default with --gate: OUT/junit.xml)")
    parser.add_argument(
        "--prometheus", action="store_true",
        help="start Prometheus on 127.0.0.1 for the run (data in DIR/prometheus; needs the prometheus package)",
    )  # fmt: skip
    parser.add_argument(
        "--prometheus-url", metavar="URL", default=None,
        help="use this running Prometheus instead (the scrape config to add is printed)",
    )  # fmt: skip


def default_out_dir() -> Path:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%SZ")
    base = Path("chatload-out") / stamp
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{stamp}-{n}")
    return path


def cpu_count() -> int:
    """Cores this process may run on (what `--workers` defaults to)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return os.cpu_count() or 1


def _fail(message: str, code: int) -> int:
    print(f"chatload run: error: {message}", file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    # Imported here so `chatload --help` stays light.
    from harness.runner import BackendUnreachable, RunConfig, Runner, check_server_args, child_env, normalize_target
    from harness.scenario_files import ScenarioError, build_params, check_syntax, inspect, resolve
    from harness import prometheus
    from harness.report import write_report_safely
    from harness.summary import format_summary, violations_total

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # e.g. started in the background by a script
        signal.signal(signal.SIGINT, signal.default_int_handler)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 2**31)
    try:
        check_gate_files(args)  # before anything starts: a typo in gates.toml must not cost a run
        extra_server_args = [piece for item in args.server_arg for piece in shlex.split(item)]
        if args.target and extra_server_args:
            raise ValueError("--server-arg applies to the embedded reference server only; with --target, "
                             "start your backend with those settings yourself")
        params = build_params(args.params, args.param)
        path = resolve(args.scenario)
        check_syntax(path)
        target = normalize_target(args.target) if args.target else None
        from harness.adapters import load as load_adapter

        adapter = load_adapter(args.protocol, args.mapping)  # MappingError is a ValueError: exit 2
        scenario = inspect(path, child_env({"CHATLOAD_SCENARIO_PARAMS": json.dumps(params), "CHATLOAD_SEED": str(seed)}))
        server_args = [*scenario.server_args, *extra_server_args]
        if target is None:
            check_server_args(server_args)
    except (ScenarioError, ValueError) as exc:  # GateError and MappingError are ValueErrors
        return _fail(str(exc), EXIT_USAGE)
    if target is not None and scenario.server_args:
        print(target_note(scenario.name, scenario.server_args), file=sys.stderr, flush=True)

    out_dir = Path(args.out) if args.out else default_out_dir()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return _fail(f"cannot create the output directory {out_dir}: {exc.strerror or exc}", EXIT_USAGE)
    defaults = scenario.run_defaults
    users = args.users or int(defaults.get("users", 10))
    spawn_rate = args.spawn_rate or float(defaults.get("spawn_rate", users))
    duration = args.duration or float(defaults.get("duration_s", 30.0))
    cfg = RunConfig(
        scenario=scenario,
        scenario_label=args.scenario if not args.scenario.endswith(".py") else str(path),
        target=target,
        users=users,
        spawn_rate=spawn_rate,
        duration_s=duration,
        workers=args.workers or cpu_count(),
        seed=seed,
        out_dir=out_dir.resolve(),
        params=params,
        unreachable_grace_s=args.unreachable_grace,
        progress_every_s=args.progress_every,
        protocol=adapter.protocol,
        mapping=str(Path(args.mapping).resolve()) if args.mapping else None,
        prometheus=args.prometheus,
        prometheus_url=args.prometheus_url,
        server_args=server_args if target is None else [],
    )
    if args.prometheus and args.prometheus_url:
        return _fail("give --prometheus or --prometheus-url, not both", EXIT_USAGE)
    if args.prometheus:
        try:
            prometheus.find_binary()
        except prometheus.PrometheusMissing as exc:
            return _fail(str(exc), EXIT_USAGE)
    try:
        outcome = Runner(cfg, echo=lambda line: print(line, flush=True)).execute()
    except BackendUnreachable as exc:
        return _fail(f"backend unreachable: {exc}", EXIT_UNREACHABLE)
    except prometheus.PrometheusFailed as exc:
        return _fail(str(exc), EXIT_USAGE)

    if outcome.results is None:
        if outcome.message:
            print(f"chatload run: {outcome.message}", file=sys.stderr)
        if outcome.stop_reason == "interrupted":
            return _fail("interrupted before any results were written", EXIT_INTERRUPTED)
        if outcome.stop_reason == "backend_unreachable":
            return _fail("the backend became unreachable and no results were written", EXIT_UNREACHABLE)
        logs = ", ".join(str(p) for p in outcome.logs[:1])
        return _fail(f"the swarm failed ({outcome.stop_reason}); see {logs}", EXIT_USAGE)

    paths = {"results": str(outcome.results_path), "logs": str(cfg.out_dir)}
    report = write_report_safely(outcome.results, cfg.out_dir / "report.html")
    if report:
        paths["report"] = report
    print()
    print(format_summary(outcome.results, paths), flush=True)
    code = _exit_code(outcome.stop_reason, violations_total(outcome.results), cfg.out_dir)
    if args.gate:
        code = _gate(args, outcome.results, cfg.out_dir, outcome.stop_reason, code)
    return code


def check_gate_files(args: argparse.Namespace) -> None:
    """Load the thresholds and the baseline once up front; any problem is a ValueError (exit 2)."""
    if not args.gate:
        if args.baseline or args.junit:
            raise ValueError("--baseline and --junit go with --gate GATES.toml")
        return
    from harness.gate.baseline import load_baseline
    from harness.gate.thresholds import load_thresholds

    load_thresholds(args.gate)
    if args.baseline:
        load_baseline(args.baseline)


def target_note(name: str, flags: list[str]) -> str:
    """What to tell a user whose --target should match a scenario's reference-server flags."""
    joined = shlex.join(flags)
    return (
        f"chatload run: note: scenario {name} runs the embedded reference server with {joined} "
        "(its time constants scaled by the time scale; see docs/scenarios.md). They are not applied "
        "to --target: configure the target to match (for the reference server: "
        f"python -m reference_server --port PORT {joined})"
    )


def _exit_code(stop_reason: str, violations: int, out_dir: Path) -> int:
    """The run's own exit code, saying why on stderr when it is not 0 or 1."""
    if stop_reason == "interrupted":
        return EXIT_INTERRUPTED
    if stop_reason == "backend_unreachable":
        print("chatload run: the backend became unreachable during the run", file=sys.stderr)
        return EXIT_UNREACHABLE
    if violations > 0:
        return EXIT_VIOLATIONS
    if stop_reason != "completed":
        return _fail(f"the swarm did not finish normally ({stop_reason}); see the logs in {out_dir}", EXIT_USAGE)
    return EXIT_OK


def _gate(args: argparse.Namespace, results: dict, out_dir: Path, stop_reason: str, code: int) -> int:
    """Gate the results, print the table and write JUnit; a failed check turns 0 into 1,
    any other code stands (an interrupted or broken run stays what it was)."""
    from harness.gate import GateError, gate_results

    junit_path = Path(args.junit) if args.junit else out_dir / "junit.xml"
    try:
        passed, table = gate_results(results, args.gate, args.baseline, junit_path)
    except (*GateError, OSError) as exc:  # checked up front; only a file changed or unwritable since
        print(f"chatload run: gate: {exc}", file=sys.stderr)
        return code if code != EXIT_OK else EXIT_USAGE
    print()
    print(table)
    print(f"{'junit':<14} {junit_path}", flush=True)
    if stop_reason != "completed":
        print(f"chatload run: note: the gate judged the results of a run that did not complete ({stop_reason})",
              file=sys.stderr)
    if not passed and code == EXIT_OK:
        return EXIT_VIOLATIONS
    return code
