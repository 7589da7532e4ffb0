"""The framer and the parsers fed random, valid and mutated byte streams (broker.codec).

Feeding follows the ports: every piece is copied into one reused scratch buffer and handed to
Reader.take(scratch, 0, n) until consumed, so a packet that the Reader keeps a reference to
instead of copying shows up as corrupted data. After each framed packet the Reader is released,
as the engine does.
"""
from hypothesis import given, strategies as st

from broker import codec
from broker.codec import MalformedPacket, Reader
from broker.settings import NO_PACKET_LIMIT

from mqtt_strategies import cuts, examples, fields, mutate, mutations, split, valid_packet
import packets

_KEEP_PENDING = 256  # what a released Reader may keep, as its documentation says
_SCRATCH = 4096

packet_limits = st.sampled_from((20, 21, 64, 200, 4096, NO_PACKET_LIMIT))


class Framed:
    """What feeding a stream produced: decoded packets, and the error that stopped it."""

    def __init__(self) -> None:
        self.packets = []  # type: list
        self.error = None  # type: Exception | None


def feed(pieces: "list[bytes]", max_packet_size: int, decode: bool = True) -> Framed:
    """Feed pieces to a fresh Reader like a port; check the Reader's bounds at every step."""
    r = Reader(max_packet_size)
    scratch = bytearray(_SCRATCH)
    got = Framed()
    try:
        for piece in pieces:
            for k in range(0, len(piece), _SCRATCH):
                n = len(piece[k:k + _SCRATCH])
                scratch[0:n] = piece[k:k + _SCRATCH]
                pos = 0
                while pos < n:
                    new = r.take(scratch, pos, n)
                    assert pos < new <= n, "take() made no progress or overran: %d -> %d of %d" % (
                        pos, new, n)
                    pos = new
                    if r.ready:
                        assert 0 <= r.start <= r.end <= len(r.buf)
                        size = r.end - r.start
                        assert r.hlen + size <= max_packet_size
                        if decode:
                            got.packets.append(fields(packets.decode(r.b0, r.buf, r.start, r.end)))
                        r.release()
                    held = r.buffered()
                    assert held <= max_packet_size, (held, max_packet_size)
                    # Grows only as bytes arrive: never more than twice what it holds.
                    assert held <= max(_KEEP_PENDING, 2 * r.have), (held, r.have)
    except MalformedPacket as e:  # Packet too large included
        got.error = e
    return got


@examples()
@given(st.binary(max_size=600), cuts, packet_limits)
def test_arbitrary_bytes_raise_only_malformed(data, cut, limit):
    """Random bytes in random pieces: the framer and decode() raise MalformedPacket (or
    Packet too large) and nothing else, and never hold more than max_packet_size."""
    feed(split(data, cut), limit)


@examples()
@given(st.lists(valid_packet, min_size=1, max_size=8), cuts)
def test_valid_streams_decode_identically_whatever_the_chunking(stream, cut):
    """Valid client packets decode to exactly the fields they were encoded from, whether the
    stream comes whole, in random pieces or byte by byte."""
    data = b"".join(p[0] for p in stream)
    expected = [p[1] for p in stream]
    for pieces in ([data], split(data, cut), [data[i:i + 1] for i in range(len(data))]):
        got = feed(pieces, NO_PACKET_LIMIT)
        assert got.error is None, got.error
        assert got.packets == expected


@examples()
@given(st.lists(valid_packet, min_size=1, max_size=6), mutations, cuts, packet_limits)
def test_mutated_streams_raise_only_malformed(stream, ops, cut, limit):
    """Flipped, inserted, deleted, overwritten or truncated bytes in a valid stream: only
    MalformedPacket, and the same packets and outcome whatever the chunking."""
    data = mutate(b"".join(p[0] for p in stream), ops)
    whole = feed([data], limit)
    pieces = feed(split(data, cut), limit)
    assert pieces.packets == whole.packets
    assert type(pieces.error) is type(whole.error)


@examples()
@given(st.integers(0, 0x3FFFFFFF), st.integers(1, 14), packet_limits)
def test_declared_size_is_refused_before_the_body_arrives(rl, b0_type, limit):
    """A header declaring more than max_packet_size raises MalformedPacket (0x95, Packet too large) as soon as the header
    is complete, before any of the body is buffered; else the Reader waits for the body."""
    b0 = (b0_type << 4) | {3: 0, 6: 2, 8: 2, 10: 2}.get(b0_type, 0)
    if not codec.header_flags_valid(b0):
        return
    head = bytearray(1 + codec.remaining_length_size(min(rl, 268435455)))
    head[0] = b0
    rl = min(rl, 268435455)
    codec.put_remaining_length(head, 1, rl)
    r = Reader(limit)
    try:
        pos = r.take(bytes(head), 0, len(head))
    except MalformedPacket as e:
        assert e.reason == 0x95 and len(head) + rl > limit
        return
    assert len(head) + rl <= limit
    assert pos == len(head)
    assert r.ready == (rl == 0)
    # The gathering buffer starts at min(packet size, 64) bytes and grows with what arrives.
    assert r.buffered() <= min(len(head) + rl, max(64, 2 * len(head)))


@examples()
@given(st.integers(0, 15), st.integers(0, 15), st.binary(max_size=300))
def test_decode_of_any_framed_body_returns_or_raises_malformed(t, flags, body):
    """decode() of every framed packet (any type, any flags, any body) returns a Packet or raises
    MalformedPacket; so do the broker's own parsers."""
    b0 = (t << 4) | flags
    for fn in (lambda: packets.decode(b0, body, 0, len(body)),
               lambda: codec.decode_connect(body, 0, len(body)),
               lambda: codec.decode_subscribe(body, 0, len(body)),
               lambda: codec.decode_unsubscribe(body, 0, len(body)),
               lambda: codec.parse_publish(codec.Publish(), b0 & 0xF9 | 0x30, body, 0, len(body))):
        try:
            fn()
        except MalformedPacket:
            pass


@examples()
@given(st.lists(valid_packet, min_size=1, max_size=6), st.binary(min_size=1, max_size=8))
def test_decode_in_place_ignores_bytes_around_the_packet(stream, junk):
    """The in-place parsers read only buf[start:end]: the same body with unrelated bytes before
    and after it decodes the same."""
    for data, expected in stream:
        r = Reader(NO_PACKET_LIMIT)
        pos = r.take(data, 0, len(data))
        assert r.ready and pos == len(data)
        body = data[r.start:r.end]
        framed = junk + body + junk
        got = fields(packets.decode(r.b0, framed, len(junk), len(junk) + len(body)))
        assert got == expected
