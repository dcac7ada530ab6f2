"""The records that workers and the core owner exchange over their Unix sockets (no I/O here).

A stream is a sequence of records: a 5-byte header (`!IB`: length of what follows the
length field, kind) and a body. Relay records carry an already-encoded server frame
for one user and are forwarded by the core owner as they are, byte for byte; control
records carry a small orjson array. Many records are written with one `write` per
loop turn (the caller joins them), so a batch costs one system call.

User ids ("gids") are integers whose low 8 bits name the worker slot hosting the user,
so the core owner routes a record from the id alone.
"""
from __future__ import annotations

import struct
from typing import Any, Callable, Iterator

import orjson

HEADER = struct.Struct("!IB")
RELAY_HEAD = struct.Struct("!IBQQ")  # header + target gid + pair token
HEADER_SIZE = HEADER.size
RELAY_HEAD_SIZE = RELAY_HEAD.size
SLOT_BITS = 8
SLOT_MASK = (1 << SLOT_BITS) - 1
MAX_SLOTS = 1 << SLOT_BITS

# kinds, worker -> core
HELLO = 1  # [slot, generation, pid]
OPEN = 2  # [gid, address]
JOIN = 3  # [gid, mode, lang, interests]
NEXT = 4  # [gid]
LEAVE = 5  # [gid, reason]; reason "report" also files a report, "banned" never fails
GONE = 6  # [gid]
# kinds, core -> worker
WELCOME = 20  # [core pid, core generation]
PAIRED = 21  # [gid, partner gid, token, pair id, mode, common, initiator, waited, partner waited]
# (one record for both members when they share a worker, one per worker otherwise)
WAITING = 22  # [gid]
PARTNER_LEFT = 23  # [gid, reason]
DONE = 24  # [gid, error code or None, idle: bool]
BAN = 25  # [address, seconds left]
STATS = 26  # [online, waiting, paired, [[mode, lang, n], ...], {slot: online}, pairs made, pairs across workers]
# both ways
RELAY = 40  # target gid, pair token, frame bytes (forwarded unchanged by the core owner)

_pack_header = HEADER.pack
_pack_relay = RELAY_HEAD.pack
_dumps = orjson.dumps


def slot_of(gid: int) -> int:
    return gid & SLOT_MASK


def make_gid(counter: int, slot: int) -> int:
    return (counter << SLOT_BITS) | slot


def control(kind: int, body: Any) -> bytes:
    """One control record."""
    payload = _dumps(body)
    return _pack_header(len(payload) + 1, kind) + payload


def relay(gid: int, token: int, frame: bytes) -> bytes:
    """One relay record: `frame` (an encoded server frame) for user `gid` in pair `token`."""
    return _pack_relay(len(frame) + 17, RELAY, gid, token) + frame


class Reader:
    """Splits a byte stream into records; `feed` returns the complete ones as (kind, record bytes)."""

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> Iterator[tuple[int, bytes]]:
        buf = self.buf
        buf += data
        pos, size = 0, len(buf)
        unpack = HEADER.unpack_from
        try:
            while size - pos >= HEADER_SIZE:
                length, kind = unpack(buf, pos)
                end = pos + 4 + length
                if end > size:
                    break
                yield kind, bytes(buf[pos:end])
                pos = end
        finally:
            del buf[:pos]


def body(record: bytes) -> Any:
    """The decoded body of a control record."""
    return orjson.loads(memoryview(record)[HEADER_SIZE:])


def relay_fields(record: bytes) -> tuple[int, int, bytes]:
    """(target gid, pair token, frame) of a relay record."""
    _, _, gid, token = RELAY_HEAD.unpack_from(record)
    return gid, token, record[RELAY_HEAD_SIZE:]


class Batcher:
    """Records queued during one loop turn, written with one call at its end."""

    __slots__ = ("parts", "schedule", "write", "scheduled")

    def __init__(self, schedule: Callable[[Callable[[], None]], Any], write: Callable[[bytes], None]) -> None:
        self.parts: list[bytes] = []
        self.schedule = schedule
        self.write = write
        self.scheduled = False

    def add(self, record: bytes) -> None:
        self.parts.append(record)
        if not self.scheduled:
            self.scheduled = True
            self.schedule(self.flush)

    def flush(self) -> None:
        self.scheduled = False
        parts = self.parts
        if parts:
            self.parts = []
            self.write(b"".join(parts))
