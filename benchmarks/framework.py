"""The ceiling: a bare aiohttp handler answering fixed bytes, on the same loop (uvloop) and with
the same number of processes sharing the port as `provisioning serve --workers N`. What Python
and aiohttp can do on this machine before the project does any work.

    python benchmarks/framework.py PORT WORKERS
"""

from __future__ import annotations

import os
import signal
import sys

import uvloop
from aiohttp import web

BODY = b"#!version:1.0.0.1\n" + b"account.1.enable = 1\n" * 60


async def answer(_request: web.Request) -> web.Response:
    return web.Response(body=BODY, headers={"ETag": '"fixed"', "Cache-Control": "no-store"})


def main() -> None:
    port, workers = int(sys.argv[1]), int(sys.argv[2])
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            app = web.Application()
            app.router.add_get("/{tail:.*}", answer)
            web.run_app(
                app, host="127.0.0.1", port=port, access_log=None, print=None,
                reuse_port=True, loop=uvloop.new_event_loop(),
            )  # fmt: skip
            os._exit(0)
        children.append(pid)

    def stop(_signum: int, _frame: object) -> None:
        for pid in children:
            os.kill(pid, signal.SIGINT)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for pid in children:
        os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
