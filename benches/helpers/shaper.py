#!/usr/bin/env python3
"""A shaping TCP relay for the remote benchmark: LISTEN -> UPSTREAM on
127.0.0.1, as one link of RATE bit/s each way with DELAY_MS one-way delay
(RTT = 2 x DELAY_MS). Stands in for `tc netem` on kernels without sch_netem.

Each direction is one serialized link shared by all connections: a chunk
leaves when the link is free (len/RATE after the previous one) and arrives
DELAY_MS later; order per connection is kept.

usage: shaper.py LISTEN_PORT UPSTREAM_PORT [RATE_MBIT=100] [DELAY_MS=10]
"""
import asyncio
import sys
import time


class Link:
    def __init__(self, rate_bps, delay_s):
        self.rate = rate_bps / 8.0
        self.delay = delay_s
        self.free_at = 0.0

    def arrival(self, n):
        now = time.monotonic()
        depart = max(now, self.free_at) + n / self.rate
        self.free_at = depart
        return depart + self.delay


async def pump(reader, writer, link):
    queue = asyncio.Queue()

    async def deliver():
        while True:
            item = await queue.get()
            if item is None:
                break
            at, data = item
            wait = at - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        try:
            writer.write_eof()
        except (OSError, RuntimeError):
            pass

    task = asyncio.create_task(deliver())
    try:
        while True:
            data = await reader.read(16384)
            if not data:
                break
            queue.put_nowait((link.arrival(len(data)), data))
    except (ConnectionError, OSError):
        pass
    queue.put_nowait(None)
    try:
        await task
    except (ConnectionError, OSError):
        pass


async def main():
    listen, upstream = int(sys.argv[1]), int(sys.argv[2])
    rate = float(sys.argv[3]) * 1e6 if len(sys.argv) > 3 else 100e6
    delay = float(sys.argv[4]) / 1000 if len(sys.argv) > 4 else 0.010
    up_link, down_link = Link(rate, delay), Link(rate, delay)

    async def handle(cr, cw):
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", upstream)
        except OSError:
            cw.close()
            return
        await asyncio.gather(pump(cr, uw, up_link), pump(ur, cw, down_link))
        cw.close()
        uw.close()

    server = await asyncio.start_server(handle, "127.0.0.1", listen)
    print(f"shaping 127.0.0.1:{listen} -> :{upstream}, {rate / 1e6:g} Mbit/s, {delay * 1000:g} ms each way", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
