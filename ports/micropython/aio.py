"""ports/aio.py's front on MicroPython: asyncio waits on sockets through its own poller
(asyncio.core._io_queue), one task per socket and direction, as its streams do. So the server's
select.poll is replaced by a Poller that gives each socket it is asked to watch a small task
waiting in asyncio's poller; when that socket is ready, the task runs one turn of the server's
loop (Server.step) with that one event, which the Poller's ipoll() hands it. A task ends when
its socket is no longer watched that way (a listener paused, a reader that stopped reading);
register() and modify() start one again.
"""
import sys

from asyncio import core  # type: ignore[attr-defined]  # MicroPython's

from broker.bytesops import const

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Generator, List
    from broker.settings import Config
    from ports.micropython.server import Server

_IN = const(1)  # select.POLLIN, POLLOUT
_OUT = const(4)


def open_server(config: "Config") -> "Server":
    """The server, listening, on a Poller; OSError after saying in one line why it cannot."""
    from ports.micropython import startup  # unloaded once the server listens
    server = startup.start(config)
    del startup
    if server is None:
        raise OSError("the broker cannot start")
    old = server.poller
    poller = Poller(server)
    for sock in server.listeners:
        old.unregister(sock)
        poller.register(sock, _IN)
    server.poller = poller
    server._ipoll = poller.ipoll
    if server.links is not None:
        server.links.poller = poller
    return server


def _watch(p: "Poller", sock: "Any", flag: int) -> "Generator[None, None, None]":
    """A socket's task: wait in asyncio's poller until it is ready, serve it, again while it is
    watched that way."""
    io = core._io_queue
    tasks = p.writers if flag == _OUT else p.readers
    mask = p.mask
    try:
        while mask.get(sock, 0) & flag:
            if flag == _OUT:
                yield io.queue_write(sock)
            else:
                yield io.queue_read(sock)
            if mask.get(sock, 0) & flag:
                p.serve(sock, flag)
    finally:
        if tasks.get(sock) is core.cur_task:
            del tasks[sock]


class Poller:
    """What Server asks of select.poll: register, modify, unregister, ipoll."""

    def __init__(self, server: "Server") -> None:
        self.server = server
        self.fail = None  # type: Any  # ports.aio.Broker._fail, set by Front
        self.mask = {}  # type: Dict[Any, int]
        self.readers = {}  # type: Dict[Any, Any]
        self.writers = {}  # type: Dict[Any, Any]
        self.event = [None, 0]  # type: List[Any]
        self.one = (self.event,)
        self.fired = False

    def register(self, sock: "Any", mask: int) -> None:
        self.mask[sock] = mask
        if mask & _IN and sock not in self.readers:
            self.readers[sock] = core.create_task(_watch(self, sock, _IN))
        if mask & _OUT and sock not in self.writers:
            self.writers[sock] = core.create_task(_watch(self, sock, _OUT))

    modify = register

    def unregister(self, sock: "Any") -> None:
        self.mask.pop(sock, None)
        for tasks in (self.readers, self.writers):
            t = tasks.pop(sock, None)
            if t is not None and t is not core.cur_task:  # (the current one ends by itself)
                t.cancel()

    def ipoll(self, timeout_ms: int) -> "Any":
        """Server.step's events: the one a task is serving, else none (never waits)."""
        if self.fired:
            self.fired = False
            return self.one
        return ()

    def serve(self, sock: "Any", flag: int) -> None:
        self.event[0] = sock
        self.event[1] = flag
        self.fired = True
        try:
            self.server.step(0)
        except Exception as e:
            if self.fail is None:
                raise
            sys.print_exception(e)  # type: ignore[attr-defined]
            self.fail(e)

    def close(self) -> None:
        for sock in list(self.mask):
            self.unregister(sock)


class Front:
    def __init__(self, server: "Server", fail: "Callable[[BaseException], None]") -> None:
        self.poller = server.poller
        self.poller.fail = fail

    def close(self) -> None:
        self.poller.close()
