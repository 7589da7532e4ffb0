"""A kept message sent from its own buffer: when a connection's output cannot take a copy of it
(the message is larger than Broker.copy_max, or a bigger output buffer would exhaust a small
heap), the port sends it in place, part by part, where it stands in the output: after
out[ooff:at], before out[at:olen] (broker.conn.Conn.chunk). Delivering then never needs a
second copy of the message, or an output buffer its size. Imported the first time a message
is spooled: a board whose messages fit its buffers never loads it.
"""
from broker.bytesops import copy_into
from broker.codec import put_remaining_length

TYPE_CHECKING = False
if TYPE_CHECKING:
    from broker.conn import Conn
    from broker.engine import Broker
    from broker.session import Message


class Spool:
    """The message's bytes on the wire: head[0:hlen] (fixed header and topic length), the topic
    (msg.data[0:tlen]), head[hlen:hlen + idlen] (the packet identifier, and for an MQTT 5
    client `tail`: the Property Length and the properties the broker adds), the rest of
    msg.data after the topic but its first `skip` bytes (the properties, which a 3.1.1 client
    does not get); `done` of its `size` bytes are out."""

    def __init__(self, msg: "Message", at: int, b0: int, mid: int, skip: int,
                 tail: bytes) -> None:
        head = bytearray(9 + len(tail))
        tlen = msg.tlen
        idlen = 2 if b0 & 0x06 else 0
        rl = 2 + len(msg.data) - skip + idlen + len(tail)
        head[0] = b0
        p = put_remaining_length(head, 1, rl)
        head[p] = tlen >> 8
        head[p + 1] = tlen & 0xFF
        head[p + 2] = mid >> 8
        head[p + 3] = mid & 0xFF
        copy_into(head, p + 2 + idlen, tail, 0, len(tail))
        self.head = head
        self.hlen = p + 2
        self.idlen = idlen + len(tail)
        self.skip = skip
        self.msg = msg
        self.at = at
        self.done = 0
        self.size = p + rl

    def chunk(self, conn: "Conn") -> int:
        """Conn.chunk() for the spooled message's next part."""
        m = self.msg
        d = self.done
        h = self.hlen
        t = m.tlen
        if d < h:
            conn.cbuf = self.head
            conn.coff = d
            return h - d
        d -= h
        if d < t:
            conn.cbuf = m.data
            conn.coff = d
            return t - d
        d -= t
        if d < self.idlen:
            conn.cbuf = self.head
            conn.coff = h + d
            return self.idlen - d
        conn.cbuf = m.data
        conn.coff = d - self.idlen + t + self.skip
        return len(m.data) - conn.coff


def spool(b: "Broker", conn: "Conn", b0: int, mid: int, msg: "Message", skip: int,
          tail: bytes) -> None:
    """Send msg (a PUBLISH with first byte b0 and packet identifier mid) from its own buffer,
    after what conn's output holds now; one message at a time per connection (Spool: skip
    and tail)."""
    sp = Spool(msg, conn.olen, b0, mid, skip, tail)
    conn.spool = sp
    conn.busy = True
    b.packets_sent += 1
    b.bytes_sent += sp.size
    if not conn.in_wq:
        conn.in_wq = True
        b.wq.append(conn)
