"""The persistence journal (broker.persist): what a save writes, what a load trusts, the marks.
A file here is a bytearray; ports/persist.py's file handling is tested through real brokers
(tests/integration/test_persistence.py)."""
from broker import persist
from broker.const import PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL
from harness import Hub
import packets
from support import error_of

CONF = "persistence true\nmax_inflight_messages 2\n"


def writer(out: bytearray) -> "object":
    def write(buf: "object", off: int, n: int) -> None:
        out.extend(memoryview(buf)[off:off + n])  # type: ignore[arg-type]
    return write


def reader(data: "bytes", start: int) -> "object":
    at = [start]

    def readinto(buf: "object", off: int, n: int) -> int:
        k = min(n, len(data) - at[0])
        memoryview(buf)[off:off + k] = data[at[0]:at[0] + k]  # type: ignore[index]
        at[0] += k
        return k
    return readinto


def save(hub: Hub, out: bytearray, whole: bool) -> None:
    n = persist.save(hub.broker, writer(out), whole, [])  # type: ignore[arg-type]
    persist.saved(hub.broker, whole, n)


def load(data: "bytes", conf: str = CONF) -> "tuple":
    """A fresh hub with data loaded as the port loads it: check(), then load() up to the last
    intact COMMIT; (hub, verdict)."""
    hub = Hub(conf)
    verdict = persist.check(reader(data, 0), len(data))  # type: ignore[arg-type]
    if verdict[1]:
        persist.load(hub.broker, reader(data, persist.HEADER), verdict, [])  # type: ignore[arg-type]
    persist.watch(hub.broker)
    return hub, verdict


def state(hub: Hub) -> "list":
    """What the broker keeps and saves, comparable across brokers."""
    b = hub.broker
    out = []
    for chain in b.retained.table.values():
        for i in range(0, len(chain), 2):
            m = chain[i]
            out.append(("retain", bytes(m.data), m.tlen, m.flags, chain[i + 1]))
    for cid in sorted(b.sessions):
        s = b.sessions[cid]
        if s.clean:
            continue  # not saved
        slots = [(s.slot_mid[i], s.slot_state[i], s.slot_flags[i],
                  None if s.slot_msg[i] is None else bytes(s.slot_msg[i].data))
                 for i in range(len(s.slot_state)) if s.slot_state[i]]
        out.append(("session", cid, s.clean, sorted(b.subs.filters_of(s)), slots,
                    [(bytes(m.data), f) for m, f in zip(s.queue, s.queue_flags)],
                    sorted(s.qos2_in or ())))
    out.sort()
    return out


def build() -> Hub:
    """A broker holding one of everything: a retained message, an offline persistent session
    with two QoS 1 messages in flight and one queued, a QoS 2 message received and not
    released from a persistent publisher."""
    hub = Hub(CONF)
    persist.watch(hub.broker)
    sub = hub.client()
    sub.connect("sub", clean_session=False)
    sub.subscribe(1, [(b"t/#", 1), (b"q2", 2)])
    pub = hub.client("127.0.0.1:5001")
    pub.connect("pub", clean_session=False)
    pub.send(packets.encode_publish(b"r/1", b"kept", 1, retain=True, mid=1))
    for i in range(3):
        pub.send(packets.encode_publish(b"t/x", b"m%d" % i, 1, mid=10 + i))
    pub.send(packets.encode_publish(b"q2", b"exactly", 2, mid=20))
    got = pub.recv()
    assert [p.type for p in got] == [PUBACK] * 4 + [PUBREC], got
    delivered = sub.publishes()
    assert [p.payload for p in delivered] == [b"m0", b"m1"], delivered  # the window is 2
    sub.lose()
    pub.lose()
    return hub


def test_whole_save_loads_the_same_state() -> None:
    hub = build()
    out = bytearray()
    save(hub, out, True)
    hub2, verdict = load(bytes(out))
    assert verdict[0] == persist.CLEAN and verdict[1] == len(out), verdict
    assert state(hub2) == state(hub), (state(hub2), state(hub))
    s = hub2.broker.sessions["sub"]
    assert len(s.queue) == 2 and s.inflight == 2  # m2 and the QoS 2 message wait behind m0, m1


def test_resumed_session_gets_its_in_flight_messages_again_then_the_queue() -> None:
    hub = build()
    mids = [hub.broker.sessions["sub"].slot_mid[i] for i in range(2)]
    out = bytearray()
    save(hub, out, True)
    hub2 = load(bytes(out))[0]
    sub = hub2.client()
    ack = sub.connect("sub", clean_session=False)
    assert ack.session_present
    got = sub.publishes()
    assert [(p.payload, p.dup, p.mid) for p in got] == [(b"m0", True, mids[0]),
                                                      (b"m1", True, mids[1])], got
    sub.send(packets.encode_ack(PUBACK, mids[0]))
    sub.send(packets.encode_ack(PUBACK, mids[1]))
    got = sub.publishes()
    assert [(p.payload, p.qos) for p in got] == [(b"m2", 1), (b"exactly", 2)], got
    # the QoS 2 identifier the publisher has not released: its PUBLISH again is no new message
    pub = hub2.client("127.0.0.1:5001")
    pub.connect("pub", clean_session=False)
    pub.send(packets.encode_publish(b"q2", b"exactly", 2, mid=20, dup=True))
    assert [p.type for p in pub.recv()] == [PUBREC]
    pub.send(packets.encode_ack(PUBREL, 20))
    assert [p.type for p in pub.recv()] == [PUBCOMP]
    assert sub.publishes() == []
    retained = hub2.client("127.0.0.1:5002")
    retained.connect("r")
    retained.subscribe(1, [(b"r/#", 0)])
    assert [p.payload for p in retained.publishes()] == [b"kept"]


def test_a_save_writes_only_what_changed_and_nothing_when_nothing_did() -> None:
    hub = build()
    out = bytearray()
    save(hub, out, True)
    whole = len(out)
    assert not hub.broker.ledger.changes.pending()
    pub = hub.client("127.0.0.1:5003")
    pub.connect("p2")
    pub.send(packets.encode_publish(b"r/2", b"new", 0, retain=True))
    pub.send(packets.encode_publish(b"r/1", b"", 0, retain=True))  # cleared
    c = hub.broker.ledger.changes
    assert c.pending() and c.count == 2 and sorted(c.topics) == [b"r/1", b"r/2"]
    assert not c.sessions  # a clean session's changes are not saved
    save(hub, out, False)
    assert len(out) - whole < 50, len(out) - whole  # three records: r/2, r/1 cleared, COMMIT
    hub2 = load(bytes(out))[0]
    assert state(hub2) == state(hub)


def test_sessions_removed_are_removed_from_the_saved_state() -> None:
    hub = build()
    out = bytearray()
    save(hub, out, True)
    gone = hub.client()
    gone.connect("sub", clean_session=True)  # [MQTT-3.1.2-6]: the old session ends
    gone.lose()
    save(hub, out, False)
    hub2 = load(bytes(out))[0]
    assert "sub" not in hub2.broker.sessions and "pub" in hub2.broker.sessions
    assert state(hub2) == state(hub)


def journal() -> "tuple":
    """Two saves and where the first ends: (data, end of save 1, state 1, state 2)."""
    hub = build()
    out = bytearray()
    save(hub, out, True)
    first = len(out)
    s1 = state(hub)
    pub = hub.client("127.0.0.1:5003")
    pub.connect("pub", clean_session=False)
    pub.send(packets.encode_publish(b"t/y", b"later", 1, mid=30))
    pub.send(packets.encode_publish(b"r/1", b"changed", 0, retain=True))
    pub.lose()
    save(hub, out, False)
    return bytes(out), first, s1, state(hub)


def test_a_journal_cut_at_any_byte_loads_the_last_complete_save() -> None:
    data, first, s1, s2 = journal()
    for n in range(len(data) + 1):
        hub, verdict = load(data[:n])
        got = state(hub)
        if n == len(data):
            assert verdict[0] == persist.CLEAN and got == s2, n
        elif n >= first:
            assert verdict[0] == (persist.CLEAN if n == first else persist.TORN), (n, verdict)
            assert verdict[1] == first and got == s1, (n, verdict)
        else:
            assert got == [], n
            assert verdict[0] == (persist.FOREIGN if n < persist.HEADER else
                                  persist.CLEAN if n == persist.HEADER else persist.TORN), n


def test_a_flipped_bit_anywhere_is_never_loaded() -> None:
    data, first, s1, s2 = journal()
    for pos in range(len(data)):
        for bit in range(8):
            bad = bytearray(data)
            bad[pos] ^= 1 << bit
            verdict = persist.check(reader(bytes(bad), 0), len(bad))  # type: ignore[arg-type]
            assert verdict[0] != persist.CLEAN and verdict[1] <= pos, (pos, bit, verdict)
    # and what is loaded is a state the broker had: a flip in the second save keeps the first
    bad = bytearray(data)
    bad[first + 10] ^= 0x10  # (in a record's body: a flip in its length may run past the end)
    hub, verdict = load(bytes(bad))
    assert state(hub) == s1 and verdict[0] == persist.DAMAGED, verdict


def test_a_journal_of_many_versions_counts_only_what_it_applies() -> None:
    """check()'s figure for what a load applies, against which a journal is compacted: a
    restart does not take the whole file for the state, and the journal does not grow with
    every run of the broker."""
    hub = build()
    out = bytearray()
    save(hub, out, True)
    one = persist.check(reader(bytes(out), 0), len(out))  # type: ignore[arg-type]
    assert one[0] == persist.CLEAN and one[4] == len(out), (one, len(out))
    sub = hub.broker.sessions["sub"]
    while len(out) <= 2 * one[4] + persist.COMPACT_MIN:  # the same session, again and again
        hub.broker.ledger.changes.session(sub)
        save(hub, out, False)
    many = persist.check(reader(bytes(out), 0), len(out))  # type: ignore[arg-type]
    assert many[0] == persist.CLEAN and many[4] == one[4], (many[4], one[4], len(out))
    c = load(bytes(out))[0].broker.ledger.changes
    c.size = len(out)
    c.whole = many[4]
    assert c.compact_now()


def test_an_empty_file_a_later_version_and_garbage_are_refused() -> None:
    data = journal()[0]
    later = bytearray(data)
    later[persist.HEADER - 1] = persist.VERSION + 1
    for bad, why in ((b"", "an empty file"), (bytes(later), "a later format version (2)"),
                     (b"\x00" * 300, "no journal header"), (b"MQTT", "no journal header")):
        hub, verdict = load(bad)
        assert verdict[:3] == [persist.FOREIGN, 0, why], verdict
        assert state(hub) == []


def test_persistence_off_marks_nothing() -> None:
    hub = Hub("")
    assert hub.broker.config.persistence is None and hub.broker.ledger.changes is None


def test_configuration() -> None:
    from broker.config import parse
    c = parse("persistence true\npersistence_location /var/lib/broker\npersistence_file x.db\n"
              "autosave_interval 60\nautosave_on_changes true\n")
    p = c.persistence
    assert p is not None and p.persistence_location == "/var/lib/broker/"
    assert (p.persistence_file, p.autosave_interval, p.autosave_on_changes) == ("x.db", 60, True)
    d = parse("persistence true\n").persistence
    assert d is not None and (d.persistence_location, d.persistence_file,
                              d.autosave_interval) == ("", "broker.db", 1800)
    assert parse("autosave_interval 10\n").persistence is None  # without persistence true
    assert parse("persistence true\npersistence false\n").persistence is None
    assert error_of("\npersistence yes\n") == \
        "broker.conf:2: persistence: expected true or false, got 'yes'"
    assert error_of("autosave_interval -5\n") == \
        "broker.conf:1: autosave_interval: -5 is out of range (0..1073741823)"
    assert error_of("autosave_interval soon\n") == \
        "broker.conf:1: autosave_interval: expected an integer, got 'soon'"
    assert error_of("persistence_file a/b.db\n").startswith(
        "broker.conf:1: persistence_file: 'a/b.db' is a file name, not a path")
    assert error_of("persistence\n") == "broker.conf:1: 'persistence' needs a value"
