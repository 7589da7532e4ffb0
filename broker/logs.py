"""Log lines only some turns need, loaded when first needed: the summary of what
broker.lifecycle.log_limited() held back in an interval, packet names (errors, debug) and the
debug trace of a PUBLISH."""
from broker.bytesops import const
from broker.keepalive import ticks_diff

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Union
    from broker.conn import Conn
    from broker.engine import Broker
    Buffer = Union[bytes, bytearray]

_LOG_DEBUG = const(0x40)
_LIMIT_INTERVAL_MS = const(10000)


def packet_name(t: int) -> str:
    """For log lines and errors only: broker.const stays unloaded on the routing path."""
    from broker.const import PACKET_NAMES
    return PACKET_NAMES[t]


def log_summaries(b: "Broker") -> None:
    """At the end of an interval, one line per condition that held lines back."""
    held = b.limited
    if held is None or ticks_diff(b.now, b.limited_since) < _LIMIT_INTERVAL_MS:
        return
    seconds = ticks_diff(b.now, b.limited_since) // 1000
    b.limited = None
    for i in range(0, len(held), 3):
        if held[i] > 1:
            b.log(held[i + 2], "%s (%d more like this in the last %d s)"
                  % (held[i + 1], held[i] - 1, seconds))


def trace(b: "Broker", what: str, conn: "Conn", b0: int, mid: int, src: "Buffer", ts: int,
          te: int, plen: int) -> None:
    """A PUBLISH in mosquitto's debug line shape."""
    b.log(_LOG_DEBUG, "%s %s (d%d, q%d, r%d, m%d, '%s', ... (%d bytes))" % (
        what, conn.client_id, (b0 >> 3) & 1, (b0 >> 1) & 3, b0 & 1, mid,
        str(bytes(src[ts:te]), "utf-8"), plen))
