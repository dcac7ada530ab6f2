"""A tiny aiohttp WebSocket echo server for the wsclient tests (run as a subprocess).

    python tests/ws_echo_server.py --port P

`GET /healthz` answers JSON. `GET /ws` echoes every text frame back, except commands:
  "raw:<hex>"         write those bytes straight to the TCP stream (hand-made frames)
  "burst:<n>"         send n JSON frames {"i": k} in one TCP write
  "big:<n>"           send one text frame of n 'x' characters
  "ping:<text>"       send a ping frame with that payload
  "close:<code>:<r>"  close with that code and reason
  "drop"              drop the TCP connection without a close frame
  "stats"             reply {"pongs": n, "last_close": code, "pong_data": [...]}
Pongs and close codes received from clients are counted for "stats".
"""
from __future__ import annotations

import argparse
import json
import struct

from aiohttp import WSMsgType, web

STATS: dict = {"pongs": 0, "last_close": None, "pong_data": []}


def _frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    n = len(payload)
    b0 = (0x80 if fin else 0) | opcode
    if n < 126:
        head = struct.pack("!BB", b0, n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, 126, n)
    else:
        head = struct.pack("!BBQ", b0, 127, n)
    return head + payload


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def ws_handler(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(autoping=False, max_msg_size=64 * 1024 * 1024)
    await ws.prepare(request)
    transport = request.transport
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            data: str = msg.data
            if data.startswith("raw:"):
                transport.write(bytes.fromhex(data[4:]))
            elif data.startswith("burst:"):
                n = int(data[6:])
                transport.write(b"".join(_frame(0x1, json.dumps({"i": k}).encode()) for k in range(n)))
            elif data.startswith("big:"):
                await ws.send_str("x" * int(data[4:]))
            elif data.startswith("ping:"):
                await ws.ping(data[5:].encode())
            elif data.startswith("close:"):
                _, code, reason = data.split(":", 2)
                await ws.close(code=int(code), message=reason.encode())
            elif data == "drop":
                transport.close()
            elif data == "stats":
                await ws.send_str(json.dumps(STATS))
            else:
                await ws.send_str(data)
        elif msg.type == WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
        elif msg.type == WSMsgType.PING:
            await ws.pong(msg.data)
        elif msg.type == WSMsgType.PONG:
            STATS["pongs"] += 1
            STATS["pong_data"].append(msg.data.decode("utf-8", "replace"))
        elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
            break
    if ws.close_code is not None:
        STATS["last_close"] = ws.close_code
    return ws


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/ws", ws_handler)
    web.run_app(app, host=args.host, port=args.port, print=None, handle_signals=True)


if __name__ == "__main__":
    main()
