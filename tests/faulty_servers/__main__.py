"""`python -m tests.faulty_servers --fault NAME --port P`: run one faulty server."""
from __future__ import annotations

import argparse

from aiohttp import web

from tests.faulty_servers.server import DEFAULT_RATE, FAULTS, Hub, build_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.faulty_servers", description=__doc__)
    parser.add_argument("--fault", choices=FAULTS, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, default=None, help="share of messages hit (leak, drop)")
    parser.add_argument("--delay-ms", type=float, default=None, help="await_race window / slow delay")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fallback-s", type=float, default=5.0, help="interest fallback (protocol default 5 s)")
    args = parser.parse_args(argv)
    rate = args.rate if args.rate is not None else DEFAULT_RATE.get(args.fault, 0.0)
    default_delay = 200.0 if args.fault == "slow" else 20.0
    delay_s = (args.delay_ms if args.delay_ms is not None else default_delay) / 1000.0
    hub = Hub(args.fault, rate, delay_s, args.seed, args.fallback_s)
    web.run_app(build_app(hub), host=args.host, port=args.port, print=None, access_log=None, shutdown_timeout=2.0)


if __name__ == "__main__":
    main()
