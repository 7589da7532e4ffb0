"""acl_file: the file's syntax (broker.acl_file, read by broker.config) and its enforcement in the
engine: PUBLISH dropped, SUBACK 0x80, deliveries and retained messages checked against read rules.

Plain functions with plain asserts: pytest runs them on CPython, tools/mptest.py on MicroPython
(which has no tempfile module: the ACL file is written to a fixed path under /tmp).
"""

from broker.acl import READ, WRITE, can, can_subscribe, overlap
from broker.config import ConfigError, parse
from broker.const import CONNACK, PUBACK, PUBREC
from harness import Hub
from packets import encode_connect, encode_publish
from ports.readfile import read_file
from support import file_error_of, remove_file, temp_path, write_file

PATH = temp_path("acl.acl")




def error_of(text: str) -> str:
    return file_error_of("acl_file", PATH, text)


def hub_with(text: str) -> Hub:
    write_file(PATH, text)
    try:
        return Hub("acl_file %s\nsys_interval 0\n" % PATH)
    finally:
        remove_file(PATH)


def client(hub: Hub, cid: str, user: "str | None" = None):  # type: ignore[no-untyped-def]
    c = hub.client()
    got = c.connect(cid, username=user)
    assert got.return_code == 0, got.return_code
    return c


def topics(c) -> "list":  # type: ignore[no-untyped-def]
    return [p.topic for p in c.publishes()]


FILE = """# anonymous clients
topic read public/#
topic readwrite anon/rw

user alice
topic alice/#
topic write sensors/+/temp
topic read sensors/#
# comment in a section

user bob
topic read $SYS/#
topic read #

pattern readwrite clients/%c/#
pattern read users/%u/inbox
"""


# --- the file ----------------------------------------------------------------------------

def test_config_without_acl_has_none() -> None:
    assert parse("").acl is None


def test_file_is_parsed() -> None:
    write_file(PATH, FILE)
    try:
        cfg = parse("acl_file %s\n" % PATH, read=read_file)
    finally:
        remove_file(PATH)
    acl = cfg.acl
    assert acl is not None
    assert acl.anonymous == [(READ, b"public/#"), (READ | WRITE, b"anon/rw")]
    assert acl.users["alice"] == [(READ | WRITE, b"alice/#"), (WRITE, b"sensors/+/temp"),
                                  (READ, b"sensors/#")]
    assert acl.users["bob"] == [(READ, b"$SYS/#"), (READ, b"#")]
    assert acl.patterns == [(READ | WRITE, b"clients/%c/#"), (READ, b"users/%u/inbox")]


def test_malformed_lines_name_file_and_line() -> None:
    assert error_of("topic read a\nfoo bar\n") == "%s:2: unknown keyword 'foo' (expected " \
        "topic, pattern or user)" % PATH
    assert error_of("\n\n# c\ntopic read\n") == "%s:4: 'topic read' needs a topic" % PATH
    assert error_of("topic\n") == "%s:1: 'topic' needs a topic" % PATH
    assert error_of("user\n") == "%s:1: 'user' needs a username" % PATH
    assert error_of("user a\ntopic a/#/b\n") == "%s:2: invalid topic filter 'a/#/b'" % PATH
    assert error_of("pattern write a+\n") == "%s:1: invalid topic filter 'a+'" % PATH


def test_unreadable_file_names_the_config_line() -> None:
    try:
        parse("\nacl_file /nonexistent/broker-acl\n", "broker.conf", read=read_file)
    except ConfigError as e:
        assert str(e).startswith("broker.conf:2: acl_file: cannot read /nonexistent/broker-acl"), \
            str(e)
    else:
        assert False, "accepted"


def test_acl_file_is_no_longer_unsupported() -> None:
    write_file(PATH, "")
    try:
        cfg = parse("acl_file %s\n" % PATH, read=read_file)
    finally:
        remove_file(PATH)
    assert cfg.acl is not None and cfg.acl.anonymous == [] and cfg.acl.users == {}


def test_only_an_acl_file_loads_the_parser_and_start_up_drops_it() -> None:
    # A board keeps the checks (broker.acl) while it serves, never the file's parser.
    import sys
    import broker
    names = ("acl", "acl_file", "config", "config_bridge", "passfile", "cli", "const")
    saved = {}
    for name in names:  # imported afresh here, and put back after
        saved[name] = (sys.modules.pop("broker." + name, None), getattr(broker, name, None))
        if hasattr(broker, name):
            delattr(broker, name)
    conf = temp_path("acl.conf")
    try:
        from broker import cli
        cli.parse_args([], read_file)
        assert "broker.acl_file" not in sys.modules and "broker.acl" not in sys.modules
        write_file(PATH, FILE)
        write_file(conf, "acl_file %s\nallow_anonymous true\n" % PATH)
        cfg = cli.parse_args(["-c", conf], read_file)
        assert "broker.acl_file" in sys.modules
        cli.unload_parser()
        assert "broker.acl_file" not in sys.modules and not hasattr(broker, "acl_file")
        assert "broker.acl" in sys.modules
        assert cfg.acl is not None and cfg.acl.users["bob"] == [(READ, b"$SYS/#"), (READ, b"#")]
    finally:
        remove_file(PATH)
        remove_file(conf)
        for name in names:
            mod, attr = saved[name]
            sys.modules.pop("broker." + name, None)
            if hasattr(broker, name):
                delattr(broker, name)
            if mod is not None:
                sys.modules["broker." + name] = mod
            if attr is not None:
                setattr(broker, name, attr)


# --- the checks ----------------------------------------------------------------------------

def test_overlap() -> None:
    def ov(a: bytes, b: bytes) -> bool:
        return overlap(a.split(b"/"), b.split(b"/"))
    assert ov(b"#", b"a/b")
    assert ov(b"a/#", b"#")
    assert ov(b"a/+", b"+/b")
    assert ov(b"a/#", b"a")
    assert not ov(b"a/+", b"a")
    assert not ov(b"a/b", b"a/c")
    assert not ov(b"a/b", b"a/b/c")
    assert not ov(b"$SYS/#", b"#")
    assert not ov(b"#", b"$SYS/x")
    assert ov(b"$SYS/#", b"$SYS/broker/+")


def test_rules_and_patterns() -> None:
    write_file(PATH, FILE)
    try:
        acl = parse("acl_file %s\n" % PATH, read=read_file).acl
    finally:
        remove_file(PATH)
    assert acl is not None
    alice = acl.rules_for("dev1", "alice")
    assert can(alice, READ, b"alice/x", 0, 7) and can(alice, WRITE, b"alice/x", 0, 7)
    assert can(alice, WRITE, b"sensors/k/temp", 0, 14)
    assert not can(alice, WRITE, b"sensors/k/hum", 0, 13)
    assert can(alice, READ, b"clients/dev1/a", 0, 14)
    assert not can(alice, READ, b"clients/dev2/a", 0, 14)
    assert can(alice, READ, b"users/alice/inbox", 0, 17)
    assert not can(alice, WRITE, b"users/alice/inbox", 0, 17)
    anon = acl.rules_for("dev2", None)
    assert not can(anon, READ, b"users/alice/inbox", 0, 17)  # %u: not for anonymous clients
    assert can(anon, READ, b"clients/dev2/x", 0, 14)
    assert can(anon, READ, b"public/x", 0, 8) and not can(anon, WRITE, b"public/x", 0, 8)
    assert can_subscribe(anon, b"#") and can_subscribe(anon, b"public/+")
    assert not can_subscribe(anon, b"private/#")
    assert len(acl.rules_for("a+b", None)) == 2  # a wildcard client id is not substituted
    unknown = acl.rules_for("dev3", "mallory")  # a user without a section: patterns only
    assert not can(unknown, READ, b"public/x", 0, 8)
    bob = acl.rules_for("b", "bob")
    assert can(bob, READ, b"$SYS/broker/uptime", 0, 18) and can(bob, READ, b"a", 0, 1)
    assert not can(alice, READ, b"$SYS/broker/uptime", 0, 18)


def test_deny_rule() -> None:
    write_file(PATH, "topic read a/#\ntopic deny a/secret\n")
    try:
        acl = parse("acl_file %s\n" % PATH, read=read_file).acl
    finally:
        remove_file(PATH)
    assert acl is not None
    r = acl.rules_for("c", None)
    assert can(r, READ, b"a/open", 0, 6) and not can(r, READ, b"a/secret", 0, 8)


# --- through the engine -------------------------------------------------------------------

def test_publish_allowed_and_denied() -> None:
    hub = hub_with(FILE)
    sub = client(hub, "s", "bob")
    assert sub.subscribe(1, [(b"#", 1)]) == [1]
    alice = client(hub, "a", "alice")
    alice.send(encode_publish(b"sensors/k/temp", b"21", 1, mid=5))
    alice.send(encode_publish(b"sensors/k/hum", b"50", 1, mid=6))  # not writable
    alice.send(encode_publish(b"other", b"x", 2, mid=7))  # not writable, QoS 2
    acks = [(p.type, p.mid) for p in alice.recv()]
    assert acks == [(PUBACK, 5), (PUBACK, 6), (PUBREC, 7)], acks  # still acknowledged
    assert topics(sub) == [b"sensors/k/temp"]
    assert "Denied PUBLISH from a to 'sensors/k/hum' (acl_file)." in hub.lines, hub.lines


def test_readwrite_default_and_anonymous_section() -> None:
    hub = hub_with(FILE)
    anon = client(hub, "x")
    assert anon.subscribe(1, [(b"anon/rw", 0)]) == [0]
    anon.send(encode_publish(b"anon/rw", b"1"))
    anon.send(encode_publish(b"public/a", b"2"))  # read-only for anonymous clients
    assert topics(anon) == [b"anon/rw"]
    alice = client(hub, "a", "alice")  # anonymous rules do not apply to a user
    alice.send(encode_publish(b"anon/rw", b"3"))
    assert topics(anon) == []
    alice.send(encode_publish(b"alice/x", b"4"))  # `topic alice/#`: readwrite
    assert alice.subscribe(2, [(b"alice/#", 0)]) == [0]
    alice.send(encode_publish(b"alice/y", b"5"))
    assert topics(alice) == [b"alice/y"]


def test_subscribe_refused_with_0x80() -> None:
    hub = hub_with(FILE)
    anon = client(hub, "x")
    assert anon.subscribe(1, [(b"public/+", 1), (b"private/#", 0), (b"anon/rw", 2)]) \
        == [1, 0x80, 2]
    assert "Denied SUBSCRIBE of x to 'private/#' (acl_file)." in hub.lines, hub.lines


def test_hash_subscriber_gets_only_what_it_may_read() -> None:
    hub = hub_with(FILE)
    alice = client(hub, "a", "alice")
    assert alice.subscribe(1, [(b"#", 0)]) == [0]  # overlaps alice/#, sensors/#
    bob = client(hub, "b", "bob")
    for t in (b"sensors/k/temp", b"secret/x", b"alice/z", b"clients/b/q", b"clients/a/q"):
        bob.send(encode_publish(t, b"v"))
    # bob may write nothing (read-only rules) except his own clients/b/#
    assert topics(alice) == []
    alice.send(encode_publish(b"alice/z", b"v"))
    alice.send(encode_publish(b"clients/a/q", b"v"))
    alice.send(encode_publish(b"sensors/k/temp", b"v"))
    got = topics(alice)
    assert got == [b"alice/z", b"clients/a/q", b"sensors/k/temp"], got
    anon = client(hub, "n")
    assert anon.subscribe(2, [(b"#", 0)]) == [0]
    alice.send(encode_publish(b"alice/z", b"v"))
    assert topics(anon) == []  # anonymous clients may not read alice/z
    assert topics(alice) == [b"alice/z"]


def test_pattern_client_id_and_username() -> None:
    hub = hub_with(FILE)
    c1 = client(hub, "dev1")
    c2 = client(hub, "dev2")
    assert c1.subscribe(1, [(b"clients/dev1/#", 0)]) == [0]
    assert c1.subscribe(2, [(b"clients/dev2/#", 0)]) == [0x80]
    c2.send(encode_publish(b"clients/dev1/cmd", b"x"))  # dev2 may not write there
    c1.send(encode_publish(b"clients/dev1/cmd", b"y"))
    assert [p.payload for p in c1.publishes()] == [b"y"]
    u = client(hub, "u1", "carol")  # no section of her own: the patterns still apply
    assert u.subscribe(3, [(b"users/carol/inbox", 0), (b"users/dave/inbox", 0)]) == [0, 0x80]
    assert c1.subscribe(4, [(b"users/+/inbox", 0)]) == [0x80]  # %u: not for anonymous


def test_retained_messages_pass_the_read_check() -> None:
    hub = hub_with("topic readwrite #\nuser alice\ntopic read a/#\n")
    w = client(hub, "w")
    w.send(encode_publish(b"a/1", b"x", retain=True))
    w.send(encode_publish(b"b/1", b"y", retain=True))
    alice = client(hub, "a", "alice")
    assert alice.subscribe(1, [(b"#", 0)]) == [0]
    assert topics(alice) == [b"a/1"]


def test_sys_denied_unless_granted() -> None:
    write_file(PATH, FILE)
    try:
        hub = Hub("acl_file %s\nsys_interval 1\n" % PATH)
    finally:
        remove_file(PATH)
    alice = client(hub, "a", "alice")
    assert alice.subscribe(1, [(b"$SYS/#", 0)]) == [0x80]
    bob = client(hub, "b", "bob")
    assert bob.subscribe(1, [(b"$SYS/broker/uptime", 0)]) == [0]
    hub.advance(2000)
    assert b"$SYS/broker/uptime" in topics(bob)
    assert topics(alice) == []


def test_will_topic_must_be_writable() -> None:
    hub = hub_with(FILE)
    c = hub.client()
    c.send(encode_connect("w1", will_topic=b"not/mine", will_payload=b"x", username="alice"))
    got = c.recv()
    assert got and got[0].type == CONNACK and got[0].return_code == 5, got
    assert c.closed
    ok = client(hub, "w2", "alice")  # and without a will she is accepted
    assert not ok.closed


def test_session_continued_by_another_user_gets_only_what_that_user_may_read() -> None:
    # Issue 15: alice's persistent session, continued by bob with her client id, keeps its
    # subscriptions and its queue, but bob receives only what his own rules let him read:
    # queued and in-flight messages for alice are dropped, later ones are checked at routing,
    # retained ones when sent (mosquitto 2.0 does the same).
    hub = hub_with("topic readwrite #\nuser alice\ntopic read a/#\nuser bob\ntopic read b/#\n"
                   "topic read a/public\n")
    pub = client(hub, "pub")
    pub.send(encode_publish(b"a/ret", b"r", retain=True))
    alice = hub.client()
    assert alice.connect("alice-id", username="alice", clean_session=False).return_code == 0
    assert alice.subscribe(1, [(b"a/#", 1)]) == [1]
    assert topics(alice) == [b"a/ret"]
    pub.send(encode_publish(b"a/inflight", b"1", 1, mid=1))
    assert topics(alice) == [b"a/inflight"]  # sent, never acknowledged
    alice.lose()
    pub.send(encode_publish(b"a/private", b"2", 1, mid=2))
    pub.send(encode_publish(b"a/public", b"3", 1, mid=3))
    bob = hub.client()
    ack = bob.connect("alice-id", username="bob", clean_session=False)
    assert ack.return_code == 0 and ack.session_present
    assert topics(bob) == [b"a/public"]
    assert "Client alice-id: 2 queued or in-flight messages dropped: not readable by its new" \
        " user (acl_file)." in hub.lines, hub.lines
    pub.send(encode_publish(b"a/private", b"4", 1, mid=4))
    pub.send(encode_publish(b"a/public", b"5", 1, mid=5))
    assert [p.payload for p in bob.publishes()] == [b"5"]
    assert bob.subscribe(2, [(b"a/#", 0)]) == [0]  # a/public overlaps: granted, as in mosquitto
    assert topics(bob) == []  # a/ret: not his to read
    bob.lose()
    alice = hub.client()
    assert alice.connect("alice-id", username="alice", clean_session=False).return_code == 0
    # bob's unacknowledged messages are sent again; what he could not read was dropped,
    # not kept for her
    assert [(p.topic, p.payload) for p in alice.publishes()] == [(b"a/public", b"3"),
                                                                 (b"a/public", b"5")]
