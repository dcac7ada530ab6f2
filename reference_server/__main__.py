"""`python -m reference_server --host 127.0.0.1 --port 8080 [limits...]`."""
from __future__ import annotations

import argparse
import sys

from . import settings as settings_mod


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reference_server",
        description="The reference matchmaking server (protocol 1, see docs/protocol.md).",
    )
    settings_mod.add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        settings = settings_mod.from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    from .app import run

    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
