"""A deadline for TCP connections that never complete an HTTP request ("slowloris").

aiohttp has no timeout for a client that connects and then sends its request headers
slowly or never, so every accepted connection gets a timer here: unless a complete
request reaches the application (the WebSocket upgrade, /healthz, ...) within the
deadline, the transport is closed. This wraps aiohttp's protocol factory; the app's
middleware calls `served()` when a request arrives.
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable


class HandshakeDeadline:
    """Protocol factory for `loop.create_server` that arms a deadline per connection."""

    def __init__(
        self,
        factory: Callable[[], asyncio.Protocol],
        timeout: float,
        loop: asyncio.AbstractEventLoop,
        on_expire: Callable[[], None] | None = None,
    ) -> None:
        self._factory = factory
        self._timeout = timeout
        self._loop = loop
        self._on_expire = on_expire
        self._pending: dict[int, asyncio.TimerHandle] = {}

    def __call__(self) -> asyncio.Protocol:
        proto = self._factory()
        self._pending[id(proto)] = self._loop.call_later(self._timeout, self._expire, proto)
        return proto

    def served(self, proto: Any) -> None:
        """A complete request arrived on this connection: it is no longer subject to the deadline."""
        handle = self._pending.pop(id(proto), None)
        if handle is not None:
            handle.cancel()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _expire(self, proto: Any) -> None:
        if self._pending.pop(id(proto), None) is None:
            return
        transport = getattr(proto, "transport", None)
        if transport is not None and not transport.is_closing():
            transport.close()
            if self._on_expire is not None:
                self._on_expire()

    def cancel_all(self) -> None:
        for handle in self._pending.values():
            handle.cancel()
        self._pending.clear()
