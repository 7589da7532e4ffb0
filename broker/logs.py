"""Log lines only errors and debugging need: packet names and the debug trace of a PUBLISH.
A board loads this module with the first such line; CPython, and any broker logging debug lines,
at start-up (broker.engine)."""
from broker.bytesops import const
from broker.const import PACKET_NAMES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Union
    from broker.conn import Conn
    from broker.engine import Broker
    Buffer = Union[bytes, bytearray]

_LOG_DEBUG = const(0x40)


def packet_name(t: int) -> str:
    return PACKET_NAMES[t]


def trace(b: "Broker", what: str, conn: "Conn", b0: int, mid: int, src: "Buffer", ts: int,
          te: int, plen: int) -> None:
    """A PUBLISH in mosquitto's debug line shape."""
    b.log(_LOG_DEBUG, "%s %s (d%d, q%d, r%d, m%d, '%s', ... (%d bytes))" % (
        what, conn.client_id, (b0 >> 3) & 1, (b0 >> 1) & 3, b0 & 1, mid,
        str(bytes(src[ts:te]), "utf-8"), plen))
