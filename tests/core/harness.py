"""Drive the engine with bytes and read back decoded packets: a port with no sockets.

Plain Python shared by pytest (CPython) and tools/mptest.py (MicroPython).
"""
from broker import codec, keepalive, lifecycle
from broker.config import default_listener, parse
from broker.const import CONNACK, PUBLISH, SUBACK
from broker.engine import CLOSED, Broker
from ports.readfile import read_file

import packets


def drain(conn: "object") -> bytes:
    """Everything a port would send on conn now (Conn.chunk / Conn.sent), as one bytes."""
    out = bytearray()
    n = conn.chunk()  # type: ignore[attr-defined]
    while n:
        out += conn.cbuf[conn.coff:conn.coff + n]  # type: ignore[attr-defined]
        conn.sent(n)  # type: ignore[attr-defined]
        n = conn.chunk()  # type: ignore[attr-defined]
    return bytes(out)


class Client:
    """One fake connection. send() feeds bytes (optionally one byte per feed call);
    recv() returns the packets the engine wrote since the last call."""

    def __init__(self, hub: "Hub", peer: str) -> None:
        self.hub = hub
        self.conn = lifecycle.accept(hub.broker, self, peer)
        assert self.conn is not None
        self.reader = codec.Reader(1 << 28)
        self.backlog = []  # type: list

    def send(self, data: bytes, split: int = 0) -> None:
        conn = self.conn
        if split:
            for i in range(0, len(data), split):
                chunk = bytearray(data[i:i + split])
                self.hub.broker.feed(conn, chunk, len(chunk))
        else:
            buf = bytearray(data)
            self.hub.broker.feed(conn, buf, len(buf))

    def recv(self) -> "list":
        data = drain(self.conn)
        out = self.backlog
        self.backlog = []
        pos = 0
        while pos < len(data):
            pos = self.reader.take(data, pos, len(data))
            if self.reader.ready:
                r = self.reader
                out.append(packets.decode(r.b0, r.buf, r.start, r.end))
        self.hub.broker.drained(self.conn)
        return out

    @property
    def closed(self) -> bool:
        return self.conn.state == CLOSED

    def lose(self) -> None:
        lifecycle.lost(self.hub.broker, self.conn)

    # Conveniences that check the obvious answer.
    def connect(self, client_id: str = "c", **kw: object) -> packets.Packet:
        self.send(packets.encode_connect(client_id, **kw))  # type: ignore[arg-type]
        got = self.recv()
        assert got and got[0].type == CONNACK, got
        self.backlog = got[1:]
        return got[0]

    def subscribe(self, mid: int, topics: "list") -> "list":
        self.send(packets.encode_subscribe(mid, topics))
        got = self.recv()
        assert got and got[0].type == SUBACK and got[0].mid == mid, got
        self.backlog = got[1:]
        return got[0].codes

    def publishes(self) -> "list":
        return [p for p in self.recv() if p.type == PUBLISH]


class Hub:
    """A broker with a manual clock and a captured log."""

    def __init__(self, config_text: str = "", now: int = 1000) -> None:
        self.lines = []  # type: list
        if "allow_anonymous" not in config_text:
            config_text += "\nallow_anonymous true\n"
        config = parse(config_text, "<test>", None, read_file)
        default_listener(config, None)
        self.now = now
        self.broker = Broker(config, self._log, now)

    def _log(self, level: int, msg: str) -> None:
        self.lines.append(msg)

    def client(self, peer: str = "127.0.0.1:5000") -> Client:
        return Client(self, peer)

    def advance(self, ms: int) -> None:
        """Move the clock forward in steps, as a port's loop would."""
        end = self.now + ms
        while self.now < end:
            self.now = min(end, self.now + 250)
            keepalive.tick(self.broker, self.now)

    def log_text(self) -> str:
        return "\n".join(self.lines)
