"""ports/aio.py's front on CPython: the server's epoll is itself a file descriptor that is
readable while one of its sockets is ready, so the asyncio loop watches that one descriptor
(add_reader) and runs one turn of the server's loop (Server.step) when it is."""
import asyncio
import sys
import time

from ports.cpython.server import Server

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable
    from broker.settings import Config


def open_server(config: "Config") -> Server:
    """The server, listening (OSError when it cannot), its addresses logged as -m broker
    does."""
    server = Server(config)
    try:
        server.bind()
    except BaseException:
        server.close()
        raise
    for address in server.addresses:
        sys.stderr.write("%d: listening on %s\n" % (int(time.time()), address))
    return server


class Front:
    def __init__(self, server: Server, fail: "Callable[[BaseException], None]") -> None:
        self.server = server
        self.fail = fail
        self.loop = asyncio.get_running_loop()
        self.fd = server.poller.fileno()
        self.loop.add_reader(self.fd, self._ready)

    def _ready(self) -> None:
        try:
            self.server.step(0)
        except Exception as e:
            self.close()
            self.fail(e)

    def close(self) -> None:
        if self.fd >= 0:
            self.loop.remove_reader(self.fd)
            self.fd = -1
