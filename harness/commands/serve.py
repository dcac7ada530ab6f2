"""`chatload serve`: run the reference matchmaking server (imports no locust).

`--workers` defaults to one process per core here (0 = auto); `--workers 1` is the
single-process server.
"""
from __future__ import annotations

import argparse

from reference_server import settings as settings_mod
from reference_server import supervisor


def add_arguments(parser: argparse.ArgumentParser) -> None:
    settings_mod.add_arguments(parser)
    supervisor.add_arguments(parser, default_workers=0)


def run(args: argparse.Namespace) -> int:
    try:
        settings = settings_mod.from_args(args)
    except ValueError as exc:
        print(f"chatload serve: {exc}")
        return 2
    return supervisor.run_from_args(settings, args)
