"""A graceful shutdown that also serves the connections still waiting to be accepted.

The kernel completes a TCP connection to a listening port before the server accepts
it; the event loop accepts what is waiting once per turn. uvicorn's shutdown closes
the listening socket first thing, and every connection completed since the loop's
last accept is then reset. A proxy has already written a request onto it: nginx
cannot send a POST or PATCH it wrote to another instance, and answers 502 (five
uploads in one `bench/scale.py` run, 0.2 s after an instance's SIGTERM, under load,
when a turn of the loop is long). With `install`, the server takes every waiting
connection just before it closes the port and serves its request like any in
flight, answered with `Connection: close` (`seau.server_protocol`). What a proxy
connects after the close is refused, and it tries another instance.

It wraps `uvicorn.Server.shutdown` in the serving process, rather than subclassing
the server: with `--workers`, uvicorn builds each worker's server inside the worker,
from its own module, where no subclass of ours can be named.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn

_Shutdown = Callable[[uvicorn.Server, "list[socket.socket] | None"], Awaitable[None]]
_INSTALLED = "_seau_takes_waiting"


def install() -> None:
    """From now on, this process's uvicorn servers take the waiting connections when
    they shut down (once per process; a second call changes nothing)."""
    shutdown: _Shutdown = uvicorn.Server.shutdown
    if getattr(shutdown, _INSTALLED, False):
        return

    async def taking_waiting_first(
        server: uvicorn.Server, sockets: list[socket.socket] | None = None
    ) -> None:
        # Nothing is awaited between taking the last waiting connection and the
        # close that begins uvicorn's shutdown: no turn of the loop, so no accept
        # left undone in between.
        taken = take_waiting(server)
        if taken:
            await asyncio.gather(*taken, return_exceptions=True)
        await shutdown(server, sockets)

    setattr(taking_waiting_first, _INSTALLED, True)
    uvicorn.Server.shutdown = taking_waiting_first  # type: ignore[method-assign,assignment]


def take_waiting(server: uvicorn.Server) -> list[asyncio.Task[Any]]:
    """Accept every connection waiting on ``server``'s listening sockets, each handed
    to the loop with the protocol uvicorn gives the connections it accepts."""
    loop = asyncio.get_running_loop()
    config = server.config

    def protocol() -> asyncio.Protocol:
        made: asyncio.Protocol = config.http_protocol_class(  # type: ignore[call-arg]
            config=config, server_state=server.server_state, app_state=server.lifespan.state
        )
        return made

    taken: list[asyncio.Task[Any]] = []
    for listening_server in getattr(server, "servers", ()):
        for listening in listening_server.sockets:
            # A duplicate of the descriptor, closed below: the listening socket
            # itself is uvicorn's to close.
            with socket.socket(fileno=os.dup(listening.fileno())) as sock:
                sock.setblocking(False)
                while True:
                    try:
                        connection, _ = sock.accept()
                    except OSError:  # none waiting (EAGAIN), or out of descriptors
                        break
                    connection.setblocking(False)
                    taken.append(
                        loop.create_task(loop.connect_accepted_socket(protocol, connection))
                    )
    return taken
