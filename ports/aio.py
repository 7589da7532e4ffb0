"""The broker as one asyncio task among an application's others, the same on CPython and on
MicroPython (a board's main.py beside its sensors, a web page, a cloud connection):

    hub = Broker("broker.conf")

    @hub.authenticate
    def check(client_id, username, password, peer):
        return USERS.get(username) == password

    @hub.on_message("cmd/led")
    def led(topic, payload):
        pin.value(payload == b"on")

    async def main():
        await hub.start()                          # listening when it returns
        asyncio.create_task(readings())
        await hub.wait()                           # until hub.stop()

Each port's front (ports/cpython/aio.py, ports/micropython/aio.py) wakes the broker when one of
its sockets is ready, not on a timer; the timers (keepalive, $SYS) run every 250 ms. The
hooks are broker.hooks'. Imported only by an application that uses it: `-m broker` and a
board's plain main.py never load it.
"""
import sys

import asyncio

from broker import lifecycle
from broker.hooks import Hooks

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, List, Optional, TypeVar, Union
    from broker.local import LocalClient
    from broker.settings import Config
    F = TypeVar("F", bound=Callable[..., Any])

_TICK_S = 0.25


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def configure(conf: "Union[None, str, Config]", port: "Optional[int]" = None) -> "Config":
    """A Config from a configuration file's path (None: the embedded default, anonymous clients
    on 127.0.0.1), port replacing its first listener's as -p does; or conf itself. A bad file
    raises broker.config.ConfigError (FILE:LINE: reason). On MicroPython the parser is unloaded
    afterwards, as -m broker does."""
    if conf is not None and not isinstance(conf, str):
        return conf
    from broker import cli
    argv = [] if conf is None else ["-c", conf]
    if port is not None:
        argv += ["-p", str(port)]
    config = cli.parse_args(argv, _read)
    if sys.implementation.name == "micropython":
        cli.unload_parser()
    return config


class Broker:
    """The broker for an asyncio application: hooks set before or after start(), start() and
    stop() coroutines, serve() to run until stop(), publish() and local_client() once
    started."""

    def __init__(self, conf: "Union[None, str, Config]" = None,
                 port: "Optional[int]" = None) -> None:
        self.conf = conf
        self.port = port
        self.hooks = Hooks()
        self.server = None  # type: Any  # the port's Server, once started
        self.front = None  # type: Any
        self.addresses = []  # type: List[str]
        self.error = None  # type: Optional[BaseException]
        self._timer = None  # type: Any
        self._done = asyncio.Event()

    # The hooks, as decorators (see broker.hooks for what each is given and answers).
    def authenticate(self, fn: "F") -> "F":
        self.hooks.authenticate = fn
        return fn

    def authorize_publish(self, fn: "F") -> "F":
        self.hooks.authorize_publish = fn
        return fn

    def authorize_subscribe(self, fn: "F") -> "F":
        self.hooks.authorize_subscribe = fn
        return fn

    def on_connect(self, fn: "F") -> "F":
        self.hooks.on_connect = fn
        return fn

    def on_disconnect(self, fn: "F") -> "F":
        self.hooks.on_disconnect = fn
        return fn

    def on_message(self, topic_filter: str) -> "Callable[[F], F]":
        def add(fn: "F") -> "F":
            self.hooks.on(topic_filter, fn)
            return fn
        return add

    def publish(self, topic: "Union[str, bytes]", payload: "Union[str, bytes]" = b"",
                qos: int = 0, retain: bool = False) -> bool:
        """Publish as the application's in-process client ("$app"; see broker.local)."""
        return self.hooks.app().publish(topic, payload, qos, retain)

    def local_client(self, client_id: str,
                     on_message: "Optional[Callable[[bytes, bytes, int, bool], None]]" = None
                     ) -> "LocalClient":
        return self.server.broker.local_client(client_id, on_message)

    async def start(self) -> None:
        """Listen and serve from now on; raises ConfigError or OSError when it cannot."""
        if sys.implementation.name == "micropython":
            from ports.micropython.aio import Front, open_server
        else:
            from ports.cpython.aio import Front, open_server  # type: ignore[assignment]
        server = open_server(configure(self.conf, self.port))
        self.server = server
        self.addresses = server.addresses
        self.hooks.attach(server.broker)
        self.front = Front(server, self._fail)
        self._timer = asyncio.create_task(self._ticks())

    async def _ticks(self) -> None:
        step = self.server.step
        while True:
            await asyncio.sleep(_TICK_S)
            try:
                step(0)
            except Exception as e:
                self._fail(e)
                return

    def _fail(self, e: "BaseException") -> None:
        """The loop failed outside any one client (a poll that found no memory): serve()
        closes everything and raises it."""
        if self.error is None:
            self.error = e
        self._done.set()

    async def stop(self) -> None:
        """Close every connection (an MQTT 5 client told the server is shutting down) and
        listener."""
        server = self.server
        if server is None:
            return
        self.server = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        lifecycle.shutdown(server.broker)
        server._flush_all()
        self.front.close()
        server.close()
        self._done.set()

    async def wait(self) -> None:
        """Until stop(), or an error of the loop, closed and raised here."""
        await self._done.wait()
        await self.stop()
        if self.error is not None:
            raise self.error

    async def serve(self) -> None:
        """start(), then wait()."""
        await self.start()
        await self.wait()
