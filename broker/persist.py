"""State that outlives the process (mosquitto's `persistence`), without I/O: what changed since
the last save (Changes), and the journal it is written to and read from through the port's
write(buf, off, n) and readinto(buf, off, n) (ports/persist.py). Imported only with
`persistence true`.

The journal is a header (_MAGIC, then the format version) and records, each
[type][body length: 4 bytes][body][CRC-32 of type, length and body]. A save is the records of
what changed (a retained message set or cleared, a persistent session whole or removed, a
bridge's queue), closed by a COMMIT; a compaction writes the whole state the same way into a
fresh file. A load reads the file twice: first to check every record and find where the last
COMMIT read intact ends, then to apply what comes before it, so that a save cut off half-way
is never half applied. Records and messages go through one small buffer; a message's bytes are
read straight into its own bytearray. Integers are variable-length (7 bits a byte), so that
a journal is the same on every word size and small for the flash it wears.
"""
from broker.bytesops import const, copy_into
from broker.session import Message, Session
from broker.lifecycle import discard_session, new_session

try:
    from binascii import crc32
except ImportError:  # a firmware built without it
    crc32 = None  # type: ignore[assignment]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Set, Union
    from broker.engine import Broker
    Buffer = Union[bytes, bytearray]
    Write = Callable[[Buffer, int, int], None]
    ReadInto = Callable[[Any, int, int], int]

_MAGIC = b"MQTTPDB"
VERSION = const(1)
HEADER = const(8)
_BUF = const(128)
_FRAME = const(5)  # type and length before a body, the CRC after it: 4 more
_CRC = const(4)
_FREE = const(0)

# Record types.
RETAIN = const(1)
RETAIN_CLEARED = const(2)
SESSION = const(3)
SESSION_REMOVED = const(4)
BRIDGE = const(5)
COMMIT = const(6)

# What check() found after the last COMMIT.
CLEAN = const(0)  # nothing
TORN = const(1)   # a save cut off: records that end with the file, or run past it
DAMAGED = const(2)  # a record that fails its CRC or is no record, with more after it
FOREIGN = const(3)  # not a journal, or one of a later format version

# A compaction when the journal holds more than twice the state it last wrote whole, and at
# least this: about one flash erase block, so that a small state is not rewritten on every save.
COMPACT_MIN = const(4096)

_PAST_END = "a record runs past the end of the file"


def _crc(data: "Any", crc: int) -> int:
    if crc32 is not None:
        return crc32(data, crc)
    c = crc ^ 0xFFFFFFFF
    for x in data:
        c ^= x
        for _ in range(8):
            c = (c >> 1) ^ (0xEDB88320 & -(c & 1))
    return c ^ 0xFFFFFFFF


class Changes:
    """What changed since the last save, marked by the core (Ledger.changes is this when
    persistence is on): the client ids of persistent sessions, the topics of retained messages,
    and whether a bridge's queue changed; `count` of marks for autosave_on_changes. `saved`:
    the client ids whose sessions the journal holds, so that a session ending writes a removal
    only when there is something to remove."""

    def __init__(self, b: "Broker") -> None:
        self.ledger = b.ledger
        self.sessions = set()  # type: Set[str]
        self.topics = set()  # type: Set[bytes]
        self.bridges = False
        self.saved = set()  # type: Set[str]
        self.count = 0
        self.last = 0  # Broker.seconds at the last save
        self.size = 0  # the journal's bytes; 0: a fresh file at the next save
        self.whole = 0  # its bytes when it was last written whole

    def session(self, s: "Session") -> None:
        """s changed: saved at the next save point if it is persistent, removed from the
        journal if it was saved there before."""
        if s.ledger is not self.ledger:
            self.bridges = True  # a bridge's session keeps a ledger of its own
        elif s.clean and s.client_id not in self.saved:
            return
        else:
            self.sessions.add(s.client_id)
        self.count += 1

    def topic(self, data: "Buffer", ts: int, te: int) -> None:
        if data[ts] != 0x24:  # "$": the broker's own ($SYS), made again at start-up
            t = bytearray(te - ts)
            copy_into(t, 0, data, ts, te - ts)
            self.topics.add(bytes(t))
            self.count += 1

    def pending(self) -> bool:
        return bool(self.sessions or self.topics or self.bridges)

    def due(self, b: "Broker") -> bool:
        """Whether to save now (at most once a second): autosave_interval seconds since the
        last save, or that many changes with autosave_on_changes."""
        if not self.pending() or b.seconds == self.last:
            return False
        p = b.config.persistence
        assert p is not None
        n = p.autosave_interval
        if n == 0:
            return False
        if p.autosave_on_changes:
            return self.count >= n
        return b.seconds - self.last >= n

    def compact_now(self) -> bool:
        """Whether the next save should write the whole state into a fresh file."""
        return self.size == 0 or self.size > 2 * self.whole + COMPACT_MIN


def watch(b: "Broker") -> Changes:
    """Start marking changes (after a load: what it applied is not a change)."""
    c = Changes(b)
    b.ledger.changes = c
    return c


def bridge_sessions(b: "Broker", bridges: "List[Any]") -> None:
    for br in bridges:
        br.session.ledger.changes = b.ledger.changes


# ---- writing ----

class _Out:
    """Records into the port's write(buf, off, n) through one small buffer, with their CRC;
    counting, it only measures a body (its length is written before it)."""

    def __init__(self, write: "Write") -> None:
        self.write = write
        self.buf = bytearray(_BUF)
        self.pos = 0
        self.crc = 0
        self.counting = False
        self.n = 0
        self.written = 0

    def flush(self) -> None:
        if self.pos:
            self.crc = _crc(memoryview(self.buf)[:self.pos], self.crc)
            self.write(self.buf, 0, self.pos)
            self.written += self.pos
            self.pos = 0

    def byte(self, v: int) -> None:
        if self.counting:
            self.n += 1
            return
        if self.pos == _BUF:
            self.flush()
        self.buf[self.pos] = v
        self.pos += 1

    def uint(self, v: int) -> None:
        while v > 0x7F:
            self.byte((v & 0x7F) | 0x80)
            v >>= 7
        self.byte(v)

    def raw(self, data: "Buffer", off: int, n: int) -> None:
        if self.counting:
            self.n += n
        elif n <= _BUF - self.pos:
            copy_into(self.buf, self.pos, data, off, n)
            self.pos += n
        else:
            self.flush()
            whole = off == 0 and n == len(data)
            self.crc = _crc(data if whole else memoryview(data)[off:off + n], self.crc)
            self.write(data, off, n)
            self.written += n

    def string(self, data: "Buffer") -> None:
        self.uint(len(data))
        self.raw(data, 0, len(data))

    def record(self, t: int, body: "Callable[[_Out, Any, Any], None]", a: "Any",
               b: "Any") -> None:
        self.counting = True
        self.n = 0
        body(self, a, b)
        n = self.n
        self.counting = False
        self.crc = 0
        self.byte(t)
        for shift in (24, 16, 8, 0):
            self.byte((n >> shift) & 0xFF)
        body(self, a, b)
        self.flush()
        c = self.crc
        for shift in (24, 16, 8, 0):
            self.byte((c >> shift) & 0xFF)
        self.write(self.buf, 0, _CRC)
        self.written += _CRC
        self.pos = 0


def _message(o: _Out, m: Message, now: int) -> None:
    o.uint(m.flags)
    o.uint(0 if m.expires < 0 else max(0, m.expires - now) + 1)
    o.uint(m.tlen)
    o.uint(m.plen)
    o.string(m.data)


def _retain_body(o: _Out, m: Message, a: "List[Any]") -> None:
    o.string(a[0].encode())
    _message(o, m, a[1])


def _topic_body(o: _Out, t: bytes, _: "Any") -> None:
    o.raw(t, 0, len(t))


def _id_body(o: _Out, cid: str, _: "Any") -> None:
    o.string(cid.encode())


def _commit_body(o: _Out, _: "Any", __: "Any") -> None:
    pass


def _session_body(o: _Out, s: "Session", b: "Broker") -> None:
    now = b.seconds
    o.string(s.client_id.encode())
    o.uint(s.expiry + 1)
    o.uint(0 if s.conn is not None else max(0, now - s.seen))
    subs = b.subs.filters_of(s) if s.ledger is b.ledger else ()
    o.uint(len(subs))
    for f, opts in subs:
        o.string(f)
        o.uint(opts)
    _deliveries(o, s, now)
    w = s.will
    if w is None:
        o.uint(0)
    else:
        o.uint(max(0, s.will_at - now) + 1)
        o.uint(s.will_expiry + 1)
        _message(o, w, now)


def _deliveries(o: _Out, s: "Session", now: int) -> None:
    """In-flight slots, the queue and the QoS 2 identifiers received but not released."""
    state = s.slot_state
    busy = 0
    for i in range(len(state)):
        if state[i] != _FREE:
            busy += 1
    o.uint(busy)
    for i in range(len(state)):
        if state[i] != _FREE:
            o.uint(s.slot_mid[i])
            o.uint(state[i])
            o.uint(s.slot_flags[i])
            o.uint(s.slot_seq[i])
            m = s.slot_msg[i]
            o.byte(0 if m is None else 1)
            if m is not None:
                _message(o, m, now)
    o.uint(len(s.queue))
    for i in range(len(s.queue)):
        o.uint(s.queue_flags[i])
        _message(o, s.queue[i], now)
    q2 = s.qos2_in
    o.uint(0 if q2 is None else len(q2))
    if q2 is not None:
        for mid in q2:
            o.uint(mid)


def _bridge_body(o: _Out, br: "Any", b: "Broker") -> None:
    o.string(br.name.encode())
    _deliveries(o, br.session, b.seconds)


def _persistent(s: "Optional[Session]") -> bool:
    return s is not None and not s.clean and s.local is None


def save(b: "Broker", write: "Write", whole: bool, bridges: "List[Any]") -> int:
    """Write what changed since the last save, or (whole) everything, closed by a COMMIT, into
    write(buf, off, n) (a fresh file gets the header first); the bytes written. The marks are
    cleared by saved(), once the port has the bytes on its file."""
    c = b.ledger.changes
    assert c is not None
    o = _Out(write)
    now = b.seconds
    if whole:
        o.write(_MAGIC + bytes((VERSION,)), 0, HEADER)
        o.written = HEADER
        for chain in b.retained.table.values():
            for i in range(0, len(chain), 2):
                m = chain[i]
                if m.data[0] != 0x24:
                    o.record(RETAIN, _retain_body, m, [chain[i + 1], now])
        for s in b.sessions.values():
            if _persistent(s):
                o.record(SESSION, _session_body, s, b)
        for br in bridges:
            o.record(BRIDGE, _bridge_body, br, b)
    else:
        for t in c.topics:
            kept = b.retained.table.get(b.retained.key(t, 0, len(t)))
            i = -1 if kept is None else b.retained._index(kept, t, 0, len(t))
            if kept is None or i < 0:
                o.record(RETAIN_CLEARED, _topic_body, t, None)
            else:
                o.record(RETAIN, _retain_body, kept[i], [kept[i + 1], now])
        for cid in c.sessions:
            one = b.sessions.get(cid)
            if _persistent(one):
                o.record(SESSION, _session_body, one, b)
            elif cid in c.saved:
                o.record(SESSION_REMOVED, _id_body, cid, None)
        if c.bridges:
            for br in bridges:
                o.record(BRIDGE, _bridge_body, br, b)
    o.record(COMMIT, _commit_body, None, None)
    return o.written


def saved(b: "Broker", whole: bool, n: int) -> None:
    """The save of n bytes is on the file: the marks start again."""
    c = b.ledger.changes
    assert c is not None
    if whole:
        c.saved = set(cid for cid, s in b.sessions.items() if _persistent(s))
        c.size = c.whole = n
    else:
        for cid in c.sessions:
            if _persistent(b.sessions.get(cid)):
                c.saved.add(cid)
            else:
                c.saved.discard(cid)
        c.size += n
    c.sessions = set()
    c.topics = set()
    c.bridges = False
    c.count = 0
    c.last = b.seconds


# ---- reading ----

class Bad(Exception):
    pass


class _In:
    """The journal through one small buffer: readinto(buf, off, n) gives the file's next bytes
    (fewer only at its end); `left` counts what the file still holds after the buffer, `body`
    what the current record's body still holds. The CRC covers what was taken: the buffer's
    part of it from `mark` on is added when the buffer is refilled or the record ends."""

    def __init__(self, readinto: "ReadInto", size: int) -> None:
        self.readinto = readinto
        self.buf = bytearray(_BUF)
        self.at = 0
        self.mark = 0
        self.have = 0
        self.left = size
        self.body = 0
        self.crc = 0
        self.taken = 0  # bytes of the file taken

    def remaining(self) -> int:
        return self.have - self.at + self.left

    def _sync(self) -> None:
        if self.at > self.mark:
            self.crc = _crc(memoryview(self.buf)[self.mark:self.at], self.crc)
        self.mark = self.at

    def _fill(self) -> None:
        self._sync()
        n = min(_BUF, self.left)
        got = self.readinto(self.buf, 0, n) if n else 0
        if got <= 0:
            raise Bad("the file ends early")
        self.left -= got
        self.have = got
        self.at = self.mark = 0

    def byte(self) -> int:
        if self.body <= 0:
            raise Bad("a record's body ends early")
        self.body -= 1
        if self.at == self.have:
            self._fill()
        self.at += 1
        self.taken += 1
        return self.buf[self.at - 1]

    def uint(self) -> int:
        v = 0
        shift = 0
        while True:
            x = self.byte()
            v |= (x & 0x7F) << shift
            if not x & 0x80:
                return v
            shift += 7
            if shift > 35:
                raise Bad("an integer too long")

    def into(self, data: "Any", off: int, n: int) -> None:
        """n bytes of the body into data[off:], straight from the file past the buffer."""
        if n > self.body:
            raise Bad("a field runs past its record")
        self.body -= n
        self.taken += n
        k = min(n, self.have - self.at)
        copy_into(data, off, self.buf, self.at, k)
        self.at += k
        if k == n:
            return
        self._sync()
        start = off + k
        end = off + n
        off = start
        mv = memoryview(data)
        while off < end:
            if end - off > self.left:
                raise Bad("the file ends early")
            got = self.readinto(mv, off, end - off)
            if got <= 0:
                raise Bad("the file ends early")
            self.left -= got
            off += got
        self.crc = _crc(mv[start:end], self.crc)

    def skip(self, n: int) -> None:
        if n > self.body:
            raise Bad("a field runs past its record")
        self.body -= n
        self.taken += n
        while n:
            if self.at == self.have:
                self._fill()
            k = min(n, self.have - self.at)
            self.at += k
            n -= k

    def string(self) -> bytes:
        n = self.uint()
        if n > self.body:
            raise Bad("a field runs past its record")
        data = bytearray(n)
        self.into(data, 0, n)
        return bytes(data)

    def frame(self) -> int:
        """The next record's type; its body follows."""
        self._sync()
        self.crc = 0
        self.body = _FRAME
        t = self.byte()
        n = 0
        for _ in range(4):
            n = (n << 8) | self.byte()
        if n + _CRC > self.remaining():
            raise Bad(_PAST_END)
        if not RETAIN <= t <= COMMIT:
            raise Bad("no record of type %d" % t)
        self.body = n
        return t

    def end(self) -> None:
        """The body is over: its CRC must match."""
        if self.body:
            raise Bad("a record has bytes it does not use")
        self._sync()
        c = self.crc
        self.body = _CRC
        v = 0
        for _ in range(4):
            v = (v << 8) | self.byte()
        self.mark = self.at
        if v != c:
            raise Bad("a record fails its CRC")


def header_ok(head: "Buffer") -> bool:
    return len(head) == HEADER and head[:7] == _MAGIC and head[7] == VERSION


def check(readinto: "ReadInto", size: int) -> "List[Any]":
    """The first pass: [what follows the last COMMIT (CLEAN, TORN, DAMAGED, FOREIGN), the
    offset where the last COMMIT ends (0: none), why (a str), where each session's last
    record before it begins, the bytes of what it holds that load() applies]: load() applies
    only each session's last record, so that a journal holding many versions of a session
    with a long queue loads in the heap one version takes; the port compacts a journal that
    holds much more than it applies (Changes.whole)."""
    head = bytearray(HEADER)
    if size < HEADER or readinto(head, 0, HEADER) != HEADER or not header_ok(head):
        why = "an empty file" if size == 0 else (
            "a later format version (%d)" % head[7] if head[:7] == _MAGIC
            else "no journal header")
        return [FOREIGN, 0, why, {}, 0]
    r = _In(readinto, size - HEADER)
    good = HEADER
    last = {}  # type: Dict[bytes, int]
    kept = {}  # type: Dict[bytes, int]  # the bytes of each session's last record
    other = 0  # the bytes of the committed records that are not a session's
    pending = []  # type: List[Any]  # this save's: client id, offset, bytes, ...
    more = 0
    while r.remaining():
        at = r.taken
        try:
            t = r.frame()
            n = _FRAME + r.body + _CRC
            if t == SESSION or t == SESSION_REMOVED:
                pending.append(r.string())
                pending.append(at)
                pending.append(n if t == SESSION else 0)
            elif t != COMMIT:
                more += n
            r.skip(r.body)
            r.end()
        except Bad as e:
            ends = r.remaining() == 0 or str(e) == _PAST_END
            return [TORN if ends else DAMAGED, good, "%s at byte %d" % (e, HEADER + at), last,
                    _applied(kept, other)]
        if t == COMMIT:
            good = HEADER + r.taken
            for i in range(0, len(pending), 3):
                last[pending[i]] = pending[i + 1]
                kept[pending[i]] = pending[i + 2]
            pending = []
            other += more
            more = 0
    if good != HEADER + r.taken:
        return [TORN, good, "a save without its COMMIT", last, _applied(kept, other)]
    return [CLEAN, good, "", last, _applied(kept, other)]


def _applied(kept: "Dict[bytes, int]", other: int) -> int:
    """About the bytes a whole save of what load() applies takes (a retained message set
    again or cleared counts each time)."""
    n = HEADER + other + _FRAME + _CRC
    for k in kept.values():
        n += k
    return n


def load(b: "Broker", readinto: "ReadInto", verdict: "List[Any]",
         bridges: "List[Any]") -> "List[int]":
    """The second pass: apply the records of the file up to where check() (verdict) found
    the last COMMIT, the header already read; [retained messages, sessions] afterwards."""
    last = verdict[3]
    r = _In(readinto, verdict[1] - HEADER)
    by_name = {}  # type: Dict[str, Any]
    for br in bridges:
        by_name[br.name] = br
    while r.remaining():
        at = r.taken
        t = r.frame()
        if t == RETAIN:
            owner = str(r.string(), "utf-8")
            m = _read_message(r, b.seconds)
            b.retained.store(m, owner)
        elif t == RETAIN_CLEARED:
            topic = bytearray(r.body)
            r.into(topic, 0, len(topic))
            b.retained.delete(topic, 0, len(topic))
        elif t == SESSION:
            cid = r.string()
            if last.get(cid) == at:
                _read_session(r, b, str(cid, "utf-8"))
            else:
                r.skip(r.body)  # a later record stands for it
        elif t == SESSION_REMOVED:
            _drop(b, str(r.string(), "utf-8"))
        elif t == BRIDGE:
            br = by_name.get(str(r.string(), "utf-8"))
            s = br.session if br is not None else Session("", False, 1, 1, b.ledger)
            s.clear()
            _read_deliveries(r, s, b.seconds)
            if br is None:
                s.clear()  # a bridge no longer configured: its queue goes
        r.end()
    return [b.retained.count, len(b.sessions)]


def _read_message(r: _In, now: int) -> Message:
    flags = r.uint()
    expires = r.uint()
    tlen = r.uint()
    plen = r.uint()
    n = r.uint()
    if tlen + plen > n or n > r.body:
        raise Bad("a message's lengths do not add up")
    data = bytearray(n)
    r.into(data, 0, n)
    m = Message(data, tlen, flags & 3, bool(flags & 4))
    if plen:
        m.plen = plen
    if expires:
        m.expires = now + expires - 1
    return m


def _drop(b: "Broker", cid: str) -> None:
    old = b.sessions.get(cid)
    if old is not None:
        if old.will is not None:  # a later record stands for it: no will to publish
            b.ledger.release(old.will)
            old.will = None
        discard_session(b, old)


def _read_session(r: _In, b: "Broker", cid: str) -> None:
    now = b.seconds
    _drop(b, cid)
    s = new_session(b, cid, False)
    s.expiry = r.uint() - 1
    s.seen = now - r.uint()
    for _ in range(r.uint()):
        f = r.string()
        b.subs.subscribe(s, f, r.uint(), 0)
    _read_deliveries(r, s, now)
    will_in = r.uint()
    if will_in:
        s.will_at = now + will_in - 1
        s.will_expiry = r.uint() - 1
        m = _read_message(r, now)
        b.ledger.hold(m)
        s.will = m
    if (s.expiry >= 0 or s.will is not None) and b.v5 is None:
        from broker import v5  # its Session Expiry Interval, its delayed will
        b.v5 = v5


def _read_deliveries(r: _In, s: "Session", now: int) -> None:
    for _ in range(r.uint()):
        mid = r.uint()
        state = r.uint()
        flags = r.uint()
        seq = r.uint()
        m = _read_message(r, now) if r.byte() else None
        if not s.slot_state:
            s._allocate()
        i = (mid - 1) % s.size
        if s.slot_state[i] != _FREE or not 0 < mid < 65536:
            if m is not None:  # max_inflight_messages changed: sent again with a new id
                s.enqueue(m, flags)
            continue
        s.slot_mid[i] = mid
        s.slot_state[i] = state
        s.slot_flags[i] = flags
        s.slot_seq[i] = seq
        if m is not None:
            s.ledger.hold(m)
            s.slot_msg[i] = m
        s.inflight += 1
        if seq > s.seq:
            s.seq = seq
    for _ in range(r.uint()):
        flags = r.uint()
        s.enqueue(_read_message(r, now), flags)
    n = r.uint()
    if n:
        s.qos2_in = set()
        for _ in range(n):
            s.qos2_in.add(r.uint())
