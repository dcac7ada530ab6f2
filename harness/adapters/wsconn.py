"""What every WebSocket adapter does with its connection: write frames, close it.

The reference and jsonws adapters differ in what they send and how they read, not in how
they write JSON to a socket or shut it down, so that lives here once.
"""
from __future__ import annotations

from typing import Any, Sequence

import gevent

from harness import wsclient


def write_json(conn: wsclient.WSConnection | None, payloads: Sequence[Any]) -> bool:
    """Send JSON frames in one write; False when there is no connection or it closed."""
    if conn is None:
        return False
    try:
        if len(payloads) == 1:
            conn.send_json(payloads[0])
        else:
            conn.send_json_many(list(payloads))
        return True
    except wsclient.ConnectionClosed:
        return False


def close_connection(reader: gevent.Greenlet | None, conn: wsclient.WSConnection | None, graceful: bool) -> None:
    """Stop the reader (unless we are it), then close: handshake if graceful, else drop."""
    if reader is not None and reader is not gevent.getcurrent():
        reader.kill(block=True)
    if conn is None:
        return
    if graceful:
        try:
            conn.close(timeout=1.0)
        except Exception:  # noqa: BLE001 - closing a broken socket
            conn.abort()
    else:
        conn.abort()
