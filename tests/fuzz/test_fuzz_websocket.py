"""Fuzz ports/websocket.py's framer: random frames (masked or not, any opcode, reserved bits,
lengths past the limit), split anywhere. It never raises, it fails the connection with a Close
frame or feeds MQTT bytes, and what it holds stays bounded."""
from hypothesis import given, settings, strategies as st

from broker import lifecycle
from broker.config import parse
from broker.engine import Broker
from ports.websocket import CLOSING, OPEN, Ws


def _frame(draw_op, fin, rsv, mask, payload, length):
    head = bytearray([(0x80 if fin else 0) | rsv | draw_op])
    m = 0x80 if mask else 0
    if length < 126:
        head.append(m | length)
    elif length < 65536:
        head += bytes([m | 126, length >> 8, length & 0xFF])
    else:
        head.append(m | 127)
        head += length.to_bytes(8, "big")
    if mask:
        head += b"\x01\x02\x03\x04"
    return bytes(head) + payload


frames = st.builds(
    _frame, st.integers(0, 15), st.booleans(), st.sampled_from([0, 0, 0, 0x40]),
    st.sampled_from([True, True, True, False]), st.binary(max_size=200),
    st.one_of(st.integers(0, 300), st.integers(0, 1 << 63)))


@settings(max_examples=300, deadline=None)
@given(st.lists(frames, max_size=8), st.lists(st.integers(1, 64), min_size=1, max_size=8))
def test_framer_never_raises_and_stays_bounded(fs, cuts):
    b = Broker(parse("allow_anonymous true\nmax_packet_size 4096\n", "<fuzz>"), None, 1000)
    conn = lifecycle.accept(b, None, "127.0.0.1:1")
    ws = Ws(b, conn, "")
    conn.ws = ws
    ws.phase = OPEN
    data = b"".join(fs)
    pos = 0
    i = 0
    while pos < len(data):
        k = cuts[i % len(cuts)]
        buf = bytearray(data[pos:pos + k])
        ws.read(buf, len(buf))
        pos += k
        i += 1
        assert ws.phase in (OPEN, CLOSING)
        assert len(ws.h) == 28 and (ws.ctl is None or len(ws.ctl) == 256)
        assert 0 <= ws.hn < 14 and ws.cn <= 125
        n = ws.chunk()
        while n > 0:
            ws.sent(n)
            n = ws.chunk()
