"""ports/websocket.py's framer over a real engine, without sockets: MQTT packets through masked
client frames, and a routed message costs no allocation (micropython.heap_lock(), MicroPython
only) when publisher and subscriber both speak WebSockets."""
from broker.config import parse
from broker.engine import CLOSED, Broker
from broker.bytesops import copy_into
from packets import encode_connect, encode_subscribe
from ports.websocket import OPEN, Ws
from support import MPY, SkipTest

if MPY:
    import micropython

KEY = b"\x11\x22\x33\x44"
PUBLISH = b"\x30\x12\x00\x0aplant/temp" + b"21.5C!"


def masked(data: bytes) -> bytes:
    """A client's binary frame (RFC 6455 section 5.2), short length."""
    out = bytearray(b"\x82" + bytes([0x80 | len(data)]) + KEY)
    for i in range(len(data)):
        out.append(data[i] ^ KEY[i & 3])
    return bytes(out)


def _hub() -> Broker:
    return Broker(parse("allow_anonymous true\n", "<ws>"), None, 1000)


def _ws_client(b: Broker, cid: str, filters: "list") -> "Ws":
    conn = b.accept(None, "127.0.0.1:1")
    ws = Ws(b, conn, "")
    conn.ws = ws
    ws.phase = OPEN  # as after the handshake
    data = encode_connect(cid) + (encode_subscribe(1, filters) if filters else b"")
    buf = bytearray(masked(data))
    ws.read(buf, len(buf))
    _drain(ws)
    return ws


def _drain(ws: "Ws") -> int:
    """Send everything, as ports/loop.py does; the bytes that were frame payload."""
    payload = 0
    n = ws.chunk()
    while n:
        if ws.cbuf is not ws.h:
            payload += n
        ws.sent(n)
        n = ws.chunk()
    return payload


def test_packets_in_frames_reach_the_engine() -> None:
    b = _hub()
    sub = _ws_client(b, "sub", [("plant/#", 0)])
    pub = _ws_client(b, "pub", [])
    stream = bytearray(masked(PUBLISH) + masked(PUBLISH[:5]) + masked(PUBLISH[5:]))
    pub.read(stream, len(stream))
    assert sub.conn.pending() == 2 * len(PUBLISH)
    assert sub.chunk() == 2  # one frame's header for both messages
    assert bytes(sub.h[18:20]) == b"\x82" + bytes([2 * len(PUBLISH)])
    sub.sent(2)
    assert _drain(sub) == 2 * len(PUBLISH)
    assert pub.conn.state != CLOSED and sub.conn.state != CLOSED


def test_routing_through_websockets_allocates_nothing() -> None:
    if not MPY:
        raise SkipTest("heap_lock is MicroPython's")
    b = _hub()
    sub = _ws_client(b, "sub", [("plant/#", 0)])
    pub = _ws_client(b, "pub", [])
    template = bytearray(masked(PUBLISH) * 8)
    stream = bytearray(len(template))
    n = len(stream)
    got = 0
    try:
        for r in range(6):
            if r == 1:
                micropython.heap_lock()  # round 0 sized the output buffer
            copy_into(stream, 0, template, 0, n)  # the framer unmasks in place
            pub.read(stream, n)
            got += _drain(sub)
    finally:
        micropython.heap_unlock()
    assert got == 6 * 8 * len(PUBLISH)
    assert pub.conn.state != CLOSED and sub.conn.state != CLOSED
