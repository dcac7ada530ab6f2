"""`chatload serve`: run the reference matchmaking server (imports no locust)."""
from __future__ import annotations

import argparse

from reference_server import settings as settings_mod


def add_arguments(parser: argparse.ArgumentParser) -> None:
    settings_mod.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    try:
        settings = settings_mod.from_args(args)
    except ValueError as exc:
        print(f"chatload serve: {exc}")
        return 2
    from reference_server.app import run as run_server

    return run_server(settings)
