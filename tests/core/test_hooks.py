"""An application's hooks (broker.hooks): the same answers as the password_file and the acl_file,
in each client's version; a hook that raises costs its one operation, never the broker."""
from harness import Hub, drain
from packets import encode_connect, encode_publish, encode_subscribe
from broker.const import CONNACK, PUBACK
from broker.hooks import APP_CLIENT_ID, Hooks, attach
from test_engine_v5 import connect5, publish5, subscribe5


def _hub(hooks: Hooks, config: str = "") -> Hub:
    hub = Hub(config)
    hooks.attach(hub.broker)
    return hub


def _connack(hub: Hub, cid: str, **kw: object) -> int:
    c = hub.client()
    c.send(encode_connect(cid, **kw))  # type: ignore[arg-type]
    got = c.recv()
    assert got and got[0].type == CONNACK, got
    return got[0].return_code


def _boom(*args: object) -> bool:
    raise RuntimeError("hook failed")


def test_authenticate_gets_the_connect_and_accepts_or_refuses():
    seen = []

    def authenticate(client_id, username, password, peer):
        seen.append((client_id, username, password, peer))
        if username == "ann":
            return password == b"secret"
        if username == "bob":
            return 4  # a CONNACK return code of its own: bad username or password
        return username is None
    h = Hooks()
    h.authenticate = authenticate
    hub = _hub(h)
    assert _connack(hub, "a1", username="ann", password=b"secret") == 0
    assert seen[0] == ("a1", "ann", b"secret", "127.0.0.1:5000")
    assert _connack(hub, "a2", username="ann", password=b"wrong") == 5
    assert _connack(hub, "b1", username="bob") == 4
    assert _connack(hub, "anon") == 0
    assert "refused by the authenticate hook" in hub.log_text()


def test_authenticate_answers_a_v5_client_with_its_reason_code():
    h = Hooks()
    h.authenticate = lambda cid, user, pw, peer: False if cid == "no" else 0x86
    hub = _hub(h)
    c = hub.client()
    c.send(connect5(b"no"))
    assert drain(c.conn)[3] == 0x87  # not authorized
    assert c.closed
    c = hub.client()
    c.send(connect5(b"other"))
    assert drain(c.conn)[3] == 0x86  # bad user name or password, as the hook said


def test_a_v5_reason_code_is_told_to_a_311_client_as_its_return_code():
    h = Hooks()
    h.authenticate = lambda cid, user, pw, peer: 0x86 if cid == "x" else 0x99
    hub = _hub(h)
    assert _connack(hub, "x") == 4
    assert _connack(hub, "y") == 5  # no 3.1.1 counterpart: not authorized


def test_authenticate_that_raises_refuses_that_client_only():
    h = Hooks()
    h.authenticate = _boom
    hub = _hub(h)
    assert _connack(hub, "c1") == 5
    assert "Hook authenticate raised" in hub.log_text()
    h.authenticate = None
    assert _connack(hub, "c2") == 0


def test_the_configuration_is_asked_before_the_hook():
    h = Hooks()
    h.authenticate = lambda cid, user, pw, peer: True
    hub = _hub(h, "allow_anonymous false\n")
    assert _connack(hub, "anon") == 5


def test_authorize_publish_drops_what_it_denies():
    h = Hooks()
    asked = []

    def authorize_publish(client_id, username, topic):
        asked.append((client_id, username, topic))
        return not topic.startswith("secret/")
    h.authorize_publish = authorize_publish
    hub = _hub(h)
    sub = hub.client()
    sub.connect("sub")
    sub.subscribe(1, [(b"#", 0)])
    pub = hub.client()
    pub.connect("pub", username="u")
    pub.send(encode_publish(b"secret/x", b"1", qos=1, mid=3))
    got = pub.recv()
    assert [(p.type, p.mid) for p in got] == [(PUBACK, 3)]  # 3.1.1 acknowledges as usual
    pub.send(encode_publish(b"open/x", b"2"))
    assert [(p.topic, p.payload) for p in sub.publishes()] == [(b"open/x", b"2")]
    assert asked == [("pub", "u", "secret/x"), ("pub", "u", "open/x")]
    assert "Denied PUBLISH from pub to 'secret/x' (hook)." in hub.log_text()


def test_a_denied_publish_is_0x87_for_a_v5_client_and_a_raising_hook_denies():
    h = Hooks()
    h.authorize_publish = _boom
    hub = _hub(h)
    c = hub.client()
    c.send(connect5(b"v5"))
    drain(c.conn)
    c.send(publish5(b"t", b"x", qos=1, mid=9))
    assert drain(c.conn)[:5] == b"\x40\x03\x00\x09\x87"
    assert not c.closed
    assert "Hook authorize_publish raised" in hub.log_text()


def test_a_will_the_hook_may_not_publish_refuses_the_connect():
    h = Hooks()
    h.authorize_publish = lambda cid, user, topic: topic != "wills/no"
    hub = _hub(h)
    assert _connack(hub, "w1", will_topic=b"wills/no", will_payload=b"x") == 5
    assert _connack(hub, "w2", will_topic=b"wills/ok", will_payload=b"x") == 0


def test_authorize_subscribe_refuses_the_filters_it_denies():
    h = Hooks()
    h.authorize_subscribe = lambda cid, user, filt, qos: filt != "#"
    hub = _hub(h)
    c = hub.client()
    c.connect("s")
    assert c.subscribe(1, [(b"#", 1), (b"a/+", 1)]) == [0x80, 1]
    v = hub.client()
    v.send(connect5(b"v"))
    drain(v.conn)
    v.send(subscribe5(2, b"#", 1))
    assert drain(v.conn)[-1] == 0x87
    h.authorize_subscribe = _boom
    assert c.subscribe(3, [(b"b", 0)]) == [0x80]
    assert "Hook authorize_subscribe raised" in hub.log_text()


def test_connect_and_disconnect_notifications():
    h = Hooks()
    events = []
    h.on_connect = lambda cid, user, peer: events.append(("up", cid, user, peer))
    h.on_disconnect = lambda cid, user, peer: events.append(("down", cid, user, peer))
    hub = _hub(h)
    c = hub.client("10.0.0.2:1234")
    c.connect("n1", username="ann")
    c.lose()
    assert events == [("up", "n1", "ann", "10.0.0.2:1234"), ("down", "n1", "ann", "10.0.0.2:1234")]


def test_a_notification_that_raises_is_logged_and_the_client_served():
    h = Hooks()
    h.on_connect = _boom
    h.on_disconnect = _boom
    hub = _hub(h)
    c = hub.client()
    assert c.connect("n1").return_code == 0
    c.subscribe(1, [(b"x", 0)])
    c.lose()
    assert "Hook on_connect raised" in hub.log_text()
    assert "Hook on_disconnect raised" in hub.log_text()


def test_message_callbacks_by_filter_and_one_that_raises():
    h = Hooks()
    got = []
    h.on("cmd/led", lambda topic, payload: got.append(("led", topic, payload)))
    h.on("cmd/#", _boom)
    h.on("cmd/+", lambda topic, payload: got.append(("any", topic, payload)))
    hub = _hub(h)
    pub = hub.client()
    pub.connect("p")
    pub.send(encode_publish(b"cmd/led", b"on", qos=1, mid=1))
    pub.send(encode_publish(b"other", b"x"))
    assert got == [("led", b"cmd/led", b"on"), ("any", b"cmd/led", b"on")]
    assert "Hook a message callback for 'cmd/#' raised" in hub.log_text()
    assert not pub.closed


def test_a_callback_added_after_attach_and_the_app_publishing():
    hub = Hub()
    h = attach(hub.broker)
    assert attach(hub.broker) is h
    got = []
    h.on("state/#", lambda topic, payload: got.append((topic, payload)))
    sub = hub.client()
    sub.connect("s")
    sub.subscribe(1, [(b"state/#", 0)])
    assert h.app().publish("state/temp", b"21.5", qos=1, retain=True)
    assert got == [(b"state/temp", b"21.5")]
    assert [(p.topic, p.payload) for p in sub.publishes()] == [(b"state/temp", b"21.5")]
    assert hub.broker.sessions[APP_CLIENT_ID].local is h.app()
    late = hub.client()
    late.connect("late")
    late.subscribe(2, [(b"state/temp", 0)])
    assert [(p.topic, p.retain) for p in late.publishes()] == [(b"state/temp", True)]


def test_hooks_unset_change_nothing():
    h = Hooks()
    hub = _hub(h)
    c = hub.client()
    c.connect("c")
    assert c.subscribe(1, [(b"#", 0)]) == [0]
    c.send(encode_subscribe(2, [(b"a", 1)]))
    assert c.recv()[0].codes == [1]
