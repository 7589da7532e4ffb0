"""per_listener_settings true: each listener's own allow_anonymous, password_file, acl_file and
client id options (broker.config_security), mosquitto 2.0's placement rules, and CONNECT
checked against the options of the listener it came through (conn.listener, set by the port)."""
from broker.auth import DEFAULT_ITERATIONS, digest
from broker.config import default_listener, parse
from broker.const import CONNACK, PUBLISH
from harness import Hub
from packets import encode_connect, encode_publish, encode_subscribe
from ports.readfile import read_file
from support import error_of, remove_file, temp_path, write_file
from binascii import b2a_base64

PASSWD = temp_path("per_listener.passwd")
ACL = temp_path("per_listener.acl")
SALT = b"0123456789ab"


def _b64(data: bytes) -> str:
    return b2a_base64(data).decode().strip()


def _files() -> None:
    write_file(PASSWD, "alice:$sha256$%d$%s$%s\n" % (
        DEFAULT_ITERATIONS, _b64(SALT), _b64(digest(b"secret", SALT, DEFAULT_ITERATIONS))))
    write_file(ACL, "user alice\ntopic readwrite a/#\n")


def _parse(text: str) -> "object":
    _files()
    try:
        return parse(text.replace("PASSWD", PASSWD).replace("ACL", ACL), "broker.conf", None,
                     read_file)
    finally:
        remove_file(PASSWD)
        remove_file(ACL)


def test_each_listener_has_its_own() -> None:
    c = _parse("per_listener_settings true\nlistener 1884\nallow_anonymous true\n"
               "listener 1885\npassword_file PASSWD\nacl_file ACL\nauto_id_prefix gw-\n"
               "allow_zero_length_clientid false\n")
    a, b = c.listeners  # type: ignore[attr-defined]
    assert (a.allow_anonymous, a.passwords, a.acl) == (True, None, None)
    assert b.allow_anonymous is False and b.passwords is not None and "alice" in b.passwords
    assert b.acl is not None and b.password_dummy is not None
    assert (b.auto_id_prefix, b.allow_zero_length_clientid) == ("gw-", False)
    assert not hasattr(a, "auto_id_prefix")
    # the global ones are not set; config.acl is there for routing to test
    assert c.passwords is None and c.acl is b.acl  # type: ignore[attr-defined]


def test_before_the_first_listener_is_the_default_listeners() -> None:
    # allow_anonymous alone does not make the default listener (mosquitto 2.0.11)
    c = _parse("per_listener_settings true\nallow_anonymous true\nlistener 1884\n")
    assert [(x.port, x.allow_anonymous) for x in c.listeners] == [  # type: ignore[attr-defined]
        (1884, False)]
    # given before or after `port`, it is the default listener's
    for text in ("per_listener_settings true\nallow_anonymous true\nport 1886\nlistener 1884\n",
                 "per_listener_settings true\nport 1886\nallow_anonymous true\nlistener 1884\n"):
        c = _parse(text)
        assert [(x.port, x.allow_anonymous) for x in c.listeners] == [  # type: ignore
            (1886, True), (1884, False)], text
    # password_file (and acl_file, the client id options) make it, on every interface at 1883
    c = _parse("per_listener_settings true\npassword_file PASSWD\nlistener 1884\n"
               "allow_anonymous true\n")
    d, x = c.listeners  # type: ignore[attr-defined]
    assert (d.host, d.port, d.passwords is not None, d.allow_anonymous) == ("", 1883, True, False)
    assert (x.port, x.passwords, x.allow_anonymous) == (1884, None, True)


def test_no_listener_is_local_and_anonymous() -> None:
    c = _parse("per_listener_settings true\n")
    default_listener(c, None)  # type: ignore[arg-type]
    lst = c.listeners[0]  # type: ignore[attr-defined]
    assert (lst.host, lst.allow_anonymous, lst.passwords, lst.acl) == ("127.0.0.1", True, None,
                                                                       None)


def test_must_come_before_any_security_option() -> None:
    why = ("per_listener_settings must be set before any other security settings"
           " (allow_anonymous, password_file, acl_file, allow_zero_length_clientid,"
           " auto_id_prefix)")
    for text, line in (("allow_anonymous true\nper_listener_settings true\n", 2),
                       ("listener 1884\nauto_id_prefix x\n\nper_listener_settings true\n", 4),
                       ("per_listener_settings true\nlistener 1884\nallow_anonymous true\n"
                        "per_listener_settings true\n", 4),
                       ("per_listener_settings true\nlistener 1884\nallow_anonymous true\n"
                        "per_listener_settings false\n", 4)):
        msg = error_of(text)
        assert msg == "broker.conf:%d: %s" % (line, why), msg
    # after a listener line, before the security options: as mosquitto
    c = parse("listener 1884\nper_listener_settings true\nallow_anonymous true\n")
    assert c.listeners[0].allow_anonymous is True
    assert error_of("per_listener_settings yes\n") == ("broker.conf:1: per_listener_settings:"
                                                        " expected true or false, got 'yes'")
    assert error_of("per_listener_settings true\nlistener 1\nallow_anonymous maybe\n") == (
        "broker.conf:3: allow_anonymous: expected true or false, got 'maybe'")
    msg = error_of("per_listener_settings true\nlistener 1\npassword_file /nonexistent/pw\n")
    assert msg.startswith("broker.conf:3: password_file: cannot read /nonexistent/pw: "), msg
    parse("per_listener_settings false\nallow_anonymous true\n")


def _hub() -> Hub:
    _files()
    try:
        return Hub("per_listener_settings true\nlistener 1884\nallow_anonymous true\n"
                   "listener 1885\npassword_file %s\nacl_file %s\nauto_id_prefix gw-\n"
                   % (PASSWD, ACL))
    finally:
        remove_file(PASSWD)
        remove_file(ACL)


def _client(hub: Hub, listener: int, cid: str, **kw: object) -> "tuple[object, int]":
    c = hub.client()
    c.conn.listener = hub.broker.config.listeners[listener]
    c.send(encode_connect(cid, **kw))  # type: ignore[arg-type]
    got = c.recv()
    assert got and got[0].type == CONNACK, got
    return c, got[0].return_code


def test_connect_is_checked_against_its_listener() -> None:
    hub = _hub()
    assert _client(hub, 0, "anon")[1] == 0
    assert _client(hub, 0, "any", username="mallory", password=b"x")[1] == 0  # no password_file
    assert _client(hub, 1, "anon1")[1] == 5  # not authorised
    assert _client(hub, 1, "bad", username="alice", password=b"wrong")[1] == 4
    assert _client(hub, 1, "good", username="alice", password=b"secret")[1] == 0
    c, rc = _client(hub, 1, "")
    assert rc == 5
    c, rc = _client(hub, 1, "", username="alice", password=b"secret")
    assert rc == 0 and "gw-00000002" in hub.broker.sessions, list(hub.broker.sessions)
    c, rc = _client(hub, 0, "")
    assert rc == 0 and "auto-00000003" in hub.broker.sessions, list(hub.broker.sessions)


def test_acl_of_its_listener() -> None:
    hub = _hub()
    sub, _ = _client(hub, 1, "sub", username="alice", password=b"secret")
    sub.send(encode_subscribe(1, [(b"#", 0)]))  # type: ignore[attr-defined]
    sub.recv()  # type: ignore[attr-defined]
    free, _ = _client(hub, 0, "free", username="alice")  # the same user, no acl_file there
    free.send(encode_subscribe(1, [(b"#", 0)]))  # type: ignore[attr-defined]
    free.recv()  # type: ignore[attr-defined]
    free.send(encode_publish(b"b/x", b"1"))  # type: ignore[attr-defined]
    free.send(encode_publish(b"a/x", b"2"))  # type: ignore[attr-defined]
    got = [(p.topic, p.payload) for p in sub.recv()  # type: ignore[attr-defined]
           if p.type == PUBLISH]
    assert got == [(b"a/x", b"2")], got
    got = [(p.topic, p.payload) for p in free.recv()  # type: ignore[attr-defined]
           if p.type == PUBLISH]
    assert got == [(b"b/x", b"1"), (b"a/x", b"2")], got
    # a session continued through a listener without an acl_file reads everything
    sub.send(b"\xe0\x00")  # type: ignore[attr-defined]
    again, _ = _client(hub, 0, "sub", clean_session=False, username="alice")
    assert hub.broker.sessions["sub"].acl is None
