"""Measurement floor: the smallest broadcast server the load generator can talk to.

Speaks the reference design's protocol (`{"message": ...}` in, the same out to
every open socket, the sender's included) with the `websockets` library's
`broadcast`, no Django, no channel layer. What the generator measures against
it is roughly its own share of every latency figure, and the highest rate it
can drive on this machine.

    python bench/floor_server.py --port 8001
"""

import argparse
import asyncio
import contextlib
import json

from websockets.asyncio.server import ServerConnection, broadcast, serve

clients: set[ServerConnection] = set()


async def handler(ws: ServerConnection) -> None:
    if ws.request is None or ws.request.path != "/ws/chat/":
        await ws.close(1008)
        return
    clients.add(ws)
    try:
        async for text in ws:
            message = json.loads(text)["message"]
            broadcast(clients, json.dumps({"message": message}))
    finally:
        clients.discard(ws)


async def main(host: str, port: int, lifetime: float) -> None:
    async with serve(handler, host, port, ping_interval=None, compression=None) as server:
        print(f"Listening on TCP address {host}:{port}", flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.serve_forever(), lifetime)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--lifetime", type=float, default=3 * 3600, help="seconds, then exit")
    args = parser.parse_args()
    asyncio.run(main(args.host, args.port, args.lifetime))
