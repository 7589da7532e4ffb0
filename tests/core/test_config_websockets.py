"""broker.config: protocol and http_dir, per listener as in mosquitto. Plain asserts: runs on
both runtimes. Serving them is the ports' job (tests/integration/test_websockets.py)."""
from broker.config import parse
from support import error_of


def test_protocol_and_http_dir_belong_to_the_listener_before_them() -> None:
    cfg = parse("listener 1883\nlistener 9001\nprotocol websockets\nhttp_dir /srv/www\n"
                "listener 9002 127.0.0.1\nprotocol websockets\nlistener 1884\nprotocol mqtt\n")
    assert [(lst.port, lst.websockets, lst.http_dir) for lst in cfg.listeners] == [
        (1883, False, ""), (9001, True, "/srv/www"), (9002, True, ""), (1884, False, "")]


def test_protocol_or_http_dir_before_a_listener() -> None:
    for name, value in (("protocol", "websockets"), ("http_dir", "/srv/www")):
        for text in ("", "port 1883\n", "bind_address 127.0.0.1\n"):
            msg = error_of("max_keepalive 60\n%s%s %s\n" % (text, name, value))
            line = 3 if text else 2
            assert msg == ("broker.conf:%d: %s applies to a listener: put it after a"
                           " 'listener PORT' line" % (line, name)), msg


def test_protocol_or_http_dir_on_a_unix_socket_listener() -> None:
    msg = error_of("listener 0 /tmp/broker.sock\nprotocol websockets\n")
    assert msg == ("broker.conf:2: protocol on a unix socket listener is not supported by this"
                   " broker (yet)"), msg
    msg = error_of("listener 9001\nprotocol websockets\nlistener 0 /tmp/broker.sock\n"
                   "http_dir /srv/www\n")
    assert msg == ("broker.conf:4: http_dir on a unix socket listener is not supported by this"
                   " broker (yet)"), msg


def test_http_dir_before_protocol_websockets() -> None:
    needs = "http_dir applies to a websockets listener: put it after 'protocol websockets'"
    msg = error_of("listener 9001\nhttp_dir /srv/www\nprotocol websockets\n")
    assert msg == "broker.conf:2: " + needs, msg
    # the listener before it speaks websockets, the one http_dir follows does not
    msg = error_of("listener 9001\nprotocol websockets\nlistener 9002\n\nhttp_dir /srv/www\n")
    assert msg == "broker.conf:5: " + needs, msg
    msg = error_of("listener 9001\nprotocol mqtt\nhttp_dir /srv/www\n")
    assert msg == "broker.conf:3: " + needs, msg


def test_protocol_and_http_dir_bad_values() -> None:
    for value in ("websocket", "Websockets", "ws", "mqttv5", "http"):
        msg = error_of("listener 9001\nprotocol %s\n" % value)
        assert msg == ("broker.conf:2: protocol: expected mqtt or websockets, got '%s'"
                       % value), msg
    for name in ("protocol", "http_dir"):
        msg = error_of("listener 9001\nprotocol websockets\n%s\n" % name)
        assert msg == "broker.conf:3: '%s' needs a value" % name, msg
    msg = error_of("listener 9001\nprotocol websockets mqtt\n")
    assert msg == "broker.conf:2: 'protocol' takes one value, got 2", msg
    msg = error_of("listener 9001\nprotocol websockets # for the dashboard\n")
    assert msg == ("broker.conf:2: 'protocol' takes one value, got 5 (a comment must be on a"
                   " line of its own)"), msg


def test_libwebsockets_options_are_recognised_not_supported() -> None:
    for line in ("websockets_log_level 255", "websockets_headers_size 4096"):
        msg = error_of("listener 9001\nprotocol websockets\n" + line + "\n")
        assert msg == ("broker.conf:3: option '%s' is not supported by this broker (yet)"
                       % line.split()[0]), msg
