"""The `chatload` command line.

Each subcommand lives in its own module under `harness.commands` and is imported only
when chosen, so `chatload serve` never imports locust (gevent monkey-patching) and a
broken optional piece cannot break the others.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

# name -> (module, one-line help). Modules expose `add_arguments(parser)` and `run(args) -> int`.
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("harness.commands.serve", "run the reference matchmaking server"),
    "run": ("harness.commands.run", "run a scenario swarm against a backend and write results"),
    "plan": ("harness.commands.plan", "preview a scenario's load hour by hour"),
    "simulate": ("harness.commands.simulate", "simulate a population through a matcher in-process"),
    "report": ("harness.commands.report", "rebuild report.html from results.json"),
    "gate": ("harness.commands.gate", "check results against thresholds and a baseline"),
    "baseline": ("harness.commands.baseline", "store a results file as a baseline"),
    "grafana": ("harness.commands.grafana", "push dashboards and run annotations to Grafana"),
}


def _available() -> dict[str, tuple[str, str]]:
    found = {}
    for name, (module, help_text) in COMMANDS.items():
        if importlib.util.find_spec(module) is not None:
            found[name] = (module, help_text)
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chatload",
        description="Load-testing and scale harness for random-match chat backends.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in _available().items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module).add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    module = importlib.import_module(args._module)
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print("chatload: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
