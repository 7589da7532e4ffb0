"""ports/websocket.py's framer over a real engine, without sockets: MQTT packets through masked
client frames, and a routed message costs no allocation (micropython.heap_lock(), MicroPython
only) when publisher and subscriber both speak WebSockets; a file of http_dir goes out a few
pieces per turn, and the connect timeout cuts a reader that stopped, not a long download."""
import os

from broker import keepalive, lifecycle
from broker.config import parse
from broker.engine import CLOSED, Broker
from broker.bytesops import copy_into
from packets import encode_connect, encode_subscribe
from ports.websocket import OPEN, Ws
from support import MPY, SkipTest, remove_file, temp_path

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
    conn = lifecycle.accept(b, None, "127.0.0.1:1")
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
    while n > 0:
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


PIECE = 512  # ports.wshttp's
PIECES_PER_TURN = 8  # ports.websocket's


def _http_dir_with(name: str, size: int) -> str:
    root = temp_path("ws-http")
    try:
        os.mkdir(root)
    except OSError:
        pass  # left by an earlier run
    with open(root + "/" + name, "wb") as f:
        f.write(b"x" * size)
    return root


def _turn(ws: "Ws") -> int:
    """One turn of ports/loop.py's flush with a socket that takes everything: bytes sent."""
    sent = 0
    n = ws.chunk()
    while n > 0:
        ws.sent(n)
        sent += n
        n = ws.chunk()
    return sent


def _get(b: Broker, root: str, path: str) -> "Ws":
    conn = lifecycle.accept(b, None, "127.0.0.1:2")
    ws = Ws(b, conn, root)
    conn.ws = ws
    req = bytearray(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: board\r\n\r\n")
    ws.read(req, len(req))
    return ws


def test_a_file_goes_out_a_few_pieces_per_turn() -> None:
    size = 20 * PIECE + 100
    root = _http_dir_with("big.js", size)
    try:
        b = Broker(parse("allow_anonymous true\n", "<ws>"), None, 1000)
        ws = _get(b, root, "/big.js")
        head = ws.chunk()
        assert bytes(ws.cbuf[0:15]) == b"HTTP/1.1 200 OK", bytes(ws.cbuf)
        ws.sent(head)
        turns = []
        while ws.conn.state != CLOSED:
            turns.append(_turn(ws))
        assert turns == [PIECES_PER_TURN * PIECE, PIECES_PER_TURN * PIECE,
                         4 * PIECE + 100], turns
    finally:
        remove_file(root + "/big.js")


def test_connect_timeout_cuts_a_stalled_reader_not_a_long_download() -> None:
    size = 6 * PIECES_PER_TURN * PIECE
    root = _http_dir_with("page.js", size)
    try:
        b = Broker(parse("allow_anonymous true\nconnect_timeout 2\n", "<ws>"), None, 1000)
        reading = _get(b, root, "/page.js")
        stalled = _get(b, root, "/page.js")
        now = 1000
        got = 0
        while reading.conn.state != CLOSED:
            now += 1500  # a turn every 1.5 s: the download takes 9 s of a 2 s connect timeout
            keepalive.tick(b, now)
            got += _turn(reading)
            assert stalled.conn.state == CLOSED or now < 1000 + 2500, now
        assert got >= size and now > 1000 + 6 * 1500, (got, now)
        assert stalled.conn.state == CLOSED
    finally:
        remove_file(root + "/page.js")
