"""Every limit of the reference server in one dataclass, with its default and its CLI flag.

`python -m reference_server` and `chatload serve` build their options from the same
table (`add_arguments` / `from_args`), so a new limit is added in exactly one place.
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Any


def _opt(default: Any, help_text: str, **extra: Any) -> Any:
    return field(default=default, metadata={"help": help_text, **extra})


@dataclass(frozen=True)
class Settings:
    """The server's configuration. Times are seconds; 0 disables a time limit where noted."""

    host: str = _opt("127.0.0.1", "address to listen on")
    port: int = _opt(8080, "TCP port to listen on")
    max_frame_bytes: int = _opt(8192, "largest accepted WebSocket frame; a larger one closes the socket with 1009")
    rate_limit: float = _opt(20.0, "sustained frames per second per connection (token bucket); 0 disables rate limiting")
    rate_burst: int = _opt(40, "token bucket size: frames a connection may send at once")
    abuse_limit: int = _opt(20, "refused (rate_limited) frames tolerated per --abuse-window before closing with 1008")
    abuse_window: float = _opt(10.0, "window of --abuse-limit, seconds")
    handshake_timeout: float = _opt(
        10.0, "a TCP connection must complete an HTTP request (e.g. the WebSocket upgrade) within this, else it is closed"
    )
    idle_timeout: float = _opt(
        60.0, "a WebSocket that stays idle (has not joined) this long is closed with 1000; 0 disables"
    )
    heartbeat: float = _opt(20.0, "WebSocket ping interval; a peer that misses the pong is closed; 0 disables")
    interest_fallback: float = _opt(5.0, "seconds after which a user with interests also pairs with anyone compatible")
    rematch_block: float = _opt(10.0, "seconds during which two users who parted with `next` are not paired again")
    report_threshold: int = _opt(
        3, "distinct reporting addresses that ban an address within --report-window; 0 disables bans"
    )
    report_window: float = _opt(600.0, "window of --report-threshold, seconds")
    ban_duration: float = _opt(600.0, "how long a ban lasts, seconds")
    trust_forwarded_for: bool = _opt(
        False, "take the client address from --forwarded-header (only behind a trusted proxy, or in tests)"
    )
    forwarded_header: str = _opt("X-Forwarded-For", "header read when --trust-forwarded-for is set (its last entry)")
    drain_grace: float = _opt(
        2.0, "on SIGTERM/SIGINT, keep current chats this long (joins refused) before closing every socket with 1001"
    )
    drain_timeout: float = _opt(10.0, "on SIGTERM/SIGINT, the process exits within this many seconds, whatever happens")
    max_send_buffer: int = _opt(
        1 << 20, "a peer whose unsent output exceeds this many bytes (it does not read) is closed with 1008"
    )
    log_level: str = _opt("info", "logging level (debug, info, warning, error)")
    gc_threshold: int = _opt(
        5_000, "objects allocated between young garbage collections (start-up objects are frozen); "
        "0 keeps Python's defaults (docs/server.md, Garbage collection)"
    )

    def __post_init__(self) -> None:
        if self.max_frame_bytes < 64:
            raise ValueError("max_frame_bytes must be at least 64")
        if self.rate_limit > 0 and self.rate_burst < 1:
            raise ValueError("rate_burst must be at least 1")
        if self.drain_timeout <= 0:
            raise ValueError("drain_timeout must be positive")
        if self.gc_threshold < 0:
            raise ValueError("gc_threshold must be >= 0")
        if self.handshake_timeout <= 0:
            raise ValueError("handshake_timeout must be positive")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one option per Settings field, with the field's default and help."""
    for f in dataclasses.fields(Settings):
        help_text = f"{f.metadata['help']} (default: {f.default})"
        if f.type in (bool, "bool"):
            parser.add_argument(_flag(f.name), dest=f.name, action="store_true", default=f.default, help=help_text)
        else:
            kind = {"int": int, "float": float, "str": str}[f.type if isinstance(f.type, str) else f.type.__name__]
            parser.add_argument(_flag(f.name), dest=f.name, type=kind, default=f.default, help=help_text)


def from_args(args: argparse.Namespace) -> Settings:
    """Build Settings from a namespace filled by `add_arguments` (unknown attributes ignored)."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(Settings) if hasattr(args, f.name)}
    return Settings(**values)
