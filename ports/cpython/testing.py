"""A broker inside the test process, for other people's tests (docs/testing.md; the pytest
fixtures of ports.cpython.pytest_plugin are built on it).

    from ports.cpython.testing import running

    with running() as b:                          # anonymous, 127.0.0.1, a port the OS picks
        client.connect(b.host, b.port)            # or b.url: "mqtt://127.0.0.1:PORT"

    with running("max_connections 1\\nretain_available false") as b: ...
    with running(max_inflight_messages=1, retain_available=False) as b: ...
    async with arunning() as b: ...               # the same broker, stopped without blocking

How it starts quickly: the listening socket is bound (port 0: the kernel picks a free port) and
listening before the serving thread starts, so `port` is known at once and the kernel queues
connections in the backlog even before the loop runs; nothing sleeps or polls. How it stops:
Server.stop() wakes the loop through its wake-up socket; the loop closes every connection, the
listeners and its own descriptors, and the thread is joined. Nothing is left behind.

The broker's log lines go to `log_lines` (and to the `logging` logger "broker.testing", at
DEBUG..ERROR; it has a NullHandler, so nothing reaches stderr unless the application configures
logging), and to an optional callback `log(level, message)`.
"""
from __future__ import annotations

import collections
import contextlib
import copy
import logging
import os
import socket
import threading
from typing import (
    TYPE_CHECKING, Any, AsyncIterator, Callable, Deque, Iterator, List, Optional, Union,
)

from broker.config import Config, Listener, embedded_default, load, parse
from broker.const import LOG_DEBUG, LOG_ERR, LOG_INFO, LOG_NOTICE, LOG_WARNING
from ports.cpython.server import Server
from ports.readfile import read_file

if TYPE_CHECKING:
    import asyncio  # imported when first needed: it costs more than the rest together

LOOPBACK = "127.0.0.1"
STOP_TIMEOUT = 5.0  # seconds stop() waits for the serving thread
MAX_LOG_LINES = 10000  # log_lines keeps the newest ones

ConfigLike = Union[None, str, bytes, "os.PathLike[str]", Config]
LogCallback = Callable[[int, str], None]

logger = logging.getLogger("broker.testing")
logger.addHandler(logging.NullHandler())

_LEVELS = {
    LOG_ERR: logging.ERROR, LOG_WARNING: logging.WARNING, LOG_NOTICE: logging.INFO,
    LOG_INFO: logging.INFO, LOG_DEBUG: logging.DEBUG,
}


def _word(value: Any) -> str:
    if value is True or value is False:
        return "true" if value else "false"
    return str(value)


def make_config(config: ConfigLike = None, **options: Any) -> Config:
    """The Config a test broker runs with.

    config: None (the embedded default: anonymous clients), a text in mosquitto.conf syntax
    (str or bytes), the path of such a file (os.PathLike), or a Config (copied, never changed).
    options: more options by name, applied after config (max_connections=1,
    retain_available=False, log_type=["error", "debug"] for an option given several times).
    With no listener in either, the broker listens on 127.0.0.1 at a port the OS picks.
    Raises broker.config.ConfigError for a bad option, as the command line does.
    """
    if config is None:
        cfg = embedded_default()
        cfg.listeners = []  # the default's 127.0.0.1:1883 is replaced by an ephemeral port below
    elif isinstance(config, Config):
        cfg = copy.deepcopy(config)
    elif isinstance(config, (str, bytes)):
        text = config.decode() if isinstance(config, bytes) else config
        cfg = parse(text, "<test broker config>", None, read_file)
    elif isinstance(config, os.PathLike):
        cfg = load(os.fspath(config), read_file)
    else:
        raise TypeError("config: expected None, a str, bytes, a path or a Config, got %r"
                        % type(config).__name__)
    if options:
        lines = []  # type: List[str]
        for name, value in options.items():
            for v in value if isinstance(value, (list, tuple)) else [value]:
                lines.append("%s %s" % (name, _word(v)))
        anonymous = cfg.allow_anonymous
        parse("\n".join(lines), "<test broker options>", cfg, read_file)
        if "allow_anonymous" not in options:
            cfg.allow_anonymous = anonymous  # parse() re-derives it; the options did not say
    if not cfg.listeners:
        cfg.listeners.append(Listener(0, LOOPBACK))
    return cfg


class RunningBroker:
    """A broker serving from a background thread.

    host, port:  where clients connect (the first TCP listener; 127.0.0.1 and the port the OS
                 picked, unless the configuration names a listener)
    url:         "mqtt://HOST:PORT"
    addresses:   every listener, "HOST:PORT"
    log_lines:   the broker's log messages so far (newest MAX_LOG_LINES), without timestamps
    config:      the Config it runs with; server: the ports.cpython.server.Server (its
                 engine belongs to the serving thread: read it only after stop())

    RunningBroker(...) binds the listeners (so the port is known and connections queue in the
    kernel); start() starts serving; stop() closes everything. Usually through running().
    """

    def __init__(self, config: ConfigLike = None, log: Optional[LogCallback] = None,
                 **options: Any) -> None:
        self.config = make_config(config, **options)
        self.log_lines = collections.deque(maxlen=MAX_LOG_LINES)  # type: Deque[str]
        self.error = None  # type: Optional[BaseException]  # what the serving thread raised
        self.thread = None  # type: Optional[threading.Thread]
        self._callback = log
        self._lock = threading.Lock()
        self._finished = False
        self._on_finish = []  # type: List[Callable[[], None]]
        self._closed = False
        self._reported = False
        self.server = Server(self.config, self._log)
        try:
            self.server.bind()
        except BaseException:
            self.server.close()
            raise
        self.host = ""
        self.port = 0
        for sock in self.server.listeners.values():
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                host, self.port = sock.getsockname()[:2]
                # A wildcard listener is reached through loopback.
                self.host = {"0.0.0.0": LOOPBACK, "::": "::1"}.get(host, host)
                break
        self.url = ("mqtt://%s:%d" % ("[%s]" % self.host if ":" in self.host else self.host,
                                      self.port)) if self.port else ""
        for address in self.server.addresses:
            self._log(LOG_NOTICE, "listening on %s" % address)

    @property
    def addresses(self) -> List[str]:
        return list(self.server.addresses)

    def __repr__(self) -> str:
        return "<RunningBroker %s%s>" % (self.url or self.addresses,
                                         "" if self.thread is None else
                                         " running" if self.thread.is_alive() else " stopped")

    def _log(self, level: int, msg: str) -> None:
        self.log_lines.append(msg)
        logger.log(_LEVELS.get(level, logging.DEBUG), "%s", msg)
        if self._callback is not None:
            self._callback(level, msg)

    def start(self) -> "RunningBroker":
        """Start the serving thread (the listeners already accept connections); returns self."""
        if self.thread is not None or self._closed:
            raise RuntimeError("this broker was already started")
        self.thread = threading.Thread(target=self._serve, daemon=True,
                                       name="mqtt-broker %s" % (self.url or self.addresses))
        self.thread.start()
        return self

    def _serve(self) -> None:
        try:
            self.server.serve()  # closes every connection and socket when it returns
        except BaseException as e:  # reported by stop()
            self.error = e
            with contextlib.suppress(Exception):
                self.server.close()
        finally:
            with self._lock:
                self._finished = True
                callbacks, self._on_finish = self._on_finish, []
            for callback in callbacks:
                callback()

    def _when_finished(self, callback: Callable[[], None]) -> None:
        with self._lock:
            if not self._finished:
                self._on_finish.append(callback)
                return
        callback()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Close every connection and listener and join the thread; nothing is left open.
        Safe to call twice. Raises what the serving thread raised, if anything (once)."""
        thread = self.thread
        if thread is None:  # never started
            if not self._closed:
                self._closed = True
                self.server.close()
            return
        self.server.stop()
        thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError("the broker thread did not stop within %.1f s" % timeout)
        self._closed = True
        self._raise_error()

    async def astop(self, timeout: float = STOP_TIMEOUT) -> None:
        """stop() for asyncio code: waits for the thread without blocking the event loop."""
        import asyncio
        thread = self.thread
        if thread is None or not thread.is_alive():
            self.stop(timeout)
            return
        loop = asyncio.get_running_loop()
        done = loop.create_future()  # type: asyncio.Future[None]

        def finished() -> None:  # on the broker thread, once it has closed everything
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(_resolve, done)

        self._when_finished(finished)
        self.server.stop()
        try:
            await asyncio.wait_for(done, timeout)
        except asyncio.TimeoutError:
            raise RuntimeError("the broker thread did not stop within %.1f s" % timeout) from None
        except asyncio.CancelledError:
            self.stop(timeout)
            raise
        self.stop(timeout)  # the thread has done its work: this join returns at once

    def _raise_error(self) -> None:
        if self.error is not None and not self._reported:
            self._reported = True
            raise RuntimeError("the broker thread failed: %r" % self.error) from self.error

    def __enter__(self) -> "RunningBroker":
        if self.thread is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _resolve(future: "asyncio.Future[None]") -> None:
    if not future.done():
        future.set_result(None)


@contextlib.contextmanager
def running(config: ConfigLike = None, log: Optional[LogCallback] = None,
            **options: Any) -> Iterator[RunningBroker]:
    """A broker serving in a background thread for the duration of the with block.

    config: None (anonymous, loopback), mosquitto.conf text, a path, or a Config; options: more
    options by name (see make_config). The listener is 127.0.0.1 at a port the OS picks unless
    the configuration names one. log: an optional callback(level, message).
    """
    broker = RunningBroker(config, log, **options)
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()


@contextlib.asynccontextmanager
async def arunning(config: ConfigLike = None, log: Optional[LogCallback] = None,
                   **options: Any) -> AsyncIterator[RunningBroker]:
    """running() for asyncio code: the same thread-based broker; starting takes well under a
    millisecond, and stopping waits for the thread without blocking the event loop."""
    broker = RunningBroker(config, log, **options)
    try:
        broker.start()
        yield broker
    finally:
        await broker.astop()
