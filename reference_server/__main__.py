"""`python -m reference_server --host 127.0.0.1 --port 8080 [--workers N] [limits...]`.

`--workers` defaults to 1 here (the embedded and test entry point: one process, exactly as
before); `chatload serve` defaults to one worker per core.
"""
from __future__ import annotations

import argparse
import sys

from . import settings as settings_mod
from . import supervisor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reference_server",
        description="The reference matchmaking server (protocol 1, see docs/protocol.md).",
    )
    settings_mod.add_arguments(parser)
    supervisor.add_arguments(parser, default_workers=1)
    args = parser.parse_args(argv)
    try:
        settings = settings_mod.from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    return supervisor.run_from_args(settings, args)


if __name__ == "__main__":
    sys.exit(main())
