"""A bounded hostile load on loopback: N connections that never behave.

Used by tests/integration/test_hostile_load.py (does an honest client still
get its mail in?) and by bench/hostile.py (what does the load cost in
memory?).  The connections come from 127.0.0.1 .. 127.0.0.<sources>, split
evenly three ways:

* slow talkers: one byte a second, never a full line;
* garbage: a line of 80 random bytes five times a second;
* endless lines: 64 KiB without a newline twice a second.

Everything stops by itself after `seconds`; nothing leaves 127.0.0.0/8.
"""

from __future__ import annotations

import asyncio
import random
import resource
import threading
import time
from typing import Callable, Dict, Optional

KINDS = ("slow talker", "garbage", "endless line")


async def _hostile(kind: int, src: str, host: str, port: int, stop: float,
                   stats: Dict[str, int]) -> None:
    try:
        r, w = await asyncio.open_connection(host, port, local_addr=(src, 0))
    except OSError:
        stats["refused"] += 1
        return
    stats["open"] += 1
    rnd = random.Random()
    try:
        while time.monotonic() < stop:
            if kind == 0:
                w.write(b"E")
                await asyncio.sleep(1)
            elif kind == 1:
                w.write(bytes(rnd.randrange(256) for _ in range(80)) + b"\r\n")
                await asyncio.sleep(0.2)
            else:
                w.write(b"X" * 65536)
                await asyncio.sleep(0.5)
            await w.drain()
            try:
                await asyncio.wait_for(r.read(4096), 0.01)
            except asyncio.TimeoutError:
                pass
            if r.at_eof():
                stats["closed_by_server"] += 1
                return
    except (ConnectionError, OSError):
        stats["closed_by_server"] += 1
    finally:
        w.close()


def run_load(host: str, port: int, connections: int, seconds: float,
             during: Optional[Callable[[float], None]] = None,
             sample: Optional[Callable[[], None]] = None,
             sources: int = 40) -> Dict[str, int]:
    """Hold `connections` hostile connections for `seconds`.  `during(stop)`
    runs in a thread meanwhile (stop is the time.monotonic() deadline);
    `sample()` is called twice a second on the load's own thread.  Returns
    counts: open, refused, closed_by_server."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = connections + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    stats = {"open": 0, "refused": 0, "closed_by_server": 0}
    stop = time.monotonic() + seconds

    async def main() -> None:
        tasks = [asyncio.ensure_future(
            _hostile(i % 3, "127.0.0.%d" % (1 + i % sources), host, port, stop, stats))
            for i in range(connections)]
        while time.monotonic() < stop:
            await asyncio.sleep(0.5)
            if sample:
                sample()
        await asyncio.gather(*tasks, return_exceptions=True)

    t = threading.Thread(target=during, args=(stop,)) if during else None
    if t:
        t.start()
    try:
        asyncio.run(main())
    finally:
        if t:
            t.join()
    return stats
