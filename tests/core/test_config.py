"""broker.config: mosquitto.conf syntax, defaults, errors. Plain asserts: runs on both runtimes."""
import os

import sys

from broker import config
from broker.config import (
    ConfigError, Config, Listener, default_listener, embedded_default, load, parse,
)
from support import error_of
from broker.const import (
    LOG_ALL, LOG_DEBUG, LOG_DEFAULT, LOG_ERR, LOG_INFO, LOG_NOTICE, LOG_SUBSCRIBE,
    LOG_UNSUBSCRIBE, LOG_WARNING,
)
from ports.readfile import read_file


def hosts(cfg: Config) -> "list[tuple[str, int]]":
    return [(lst.host, lst.port) for lst in cfg.listeners]


# --- defaults -------------------------------------------------------------------------------

def test_defaults() -> None:
    c = Config()
    assert c.listeners == []
    assert c.allow_anonymous is True
    assert c.max_connections == config.DEFAULT_MAX_CONNECTIONS == 10000
    assert c.max_inflight_messages == 20
    assert c.max_queued_messages == 1000
    assert c.queue_qos0_messages is False
    assert c.max_packet_size == 268435460
    assert c.max_keepalive == 65535
    assert c.retain_available is True
    assert c.log_types == LOG_DEFAULT
    assert c.log_dest == "stderr"
    assert c.max_subscriptions == 100000
    assert c.max_retained_messages == 10000
    assert c.max_sessions == 10000
    assert c.max_topic_length == 65535
    assert c.sys_interval == 10


def test_empty_file_is_the_defaults() -> None:
    c = parse("")
    d = Config()
    for name in ("max_connections", "max_inflight_messages", "max_queued_messages",
                 "queue_qos0_messages", "max_packet_size", "max_keepalive", "retain_available",
                 "log_types", "log_dest", "max_subscriptions", "max_retained_messages",
                 "max_sessions", "max_topic_length", "allow_anonymous", "sys_interval"):
        assert getattr(c, name) == getattr(d, name), name
    assert c.listeners == []
    assert c.allow_anonymous is True


def test_embedded_default() -> None:
    c = embedded_default()
    assert hosts(c) == [("127.0.0.1", 1883)]
    assert c.allow_anonymous is True
    assert c.max_inflight_messages == 20


# --- each option ----------------------------------------------------------------------------

def test_integer_options() -> None:
    c = parse("max_connections 50\n"
              "max_inflight_messages 10\n"
              "max_queued_messages 7\n"
              "max_packet_size 1024\n"
              "max_keepalive 120\n"
              "max_subscriptions 64\n"
              "max_retained_messages 32\n"
              "max_sessions 8\n"
              "max_topic_length 128\n"
              "max_topic_alias 4\n"
              "max_qos 1\n")
    assert c.max_connections == 50
    assert c.max_inflight_messages == 10
    assert c.max_queued_messages == 7
    assert c.max_packet_size == 1024
    assert c.max_keepalive == 120
    assert c.max_subscriptions == 64
    assert c.max_retained_messages == 32
    assert c.max_sessions == 8
    assert c.max_topic_alias == 4
    assert c.max_qos == 1
    assert c.max_topic_length == 128


def test_no_limit_values() -> None:
    c = parse("max_connections -1\nmax_inflight_messages 0\nmax_packet_size 0\n")
    assert c.max_connections == 10000
    assert c.max_inflight_messages == 65535
    assert c.max_packet_size == 268435460


def test_range_edges_accepted() -> None:
    c = parse("max_keepalive 10\nmax_packet_size 20\nmax_inflight_messages 65535\n"
              "max_topic_length 65535\nmax_connections 1\nmax_queued_messages 1\n")
    assert c.max_keepalive == 10
    assert c.max_packet_size == 20
    assert c.max_inflight_messages == 65535
    assert c.max_topic_length == 65535
    assert c.max_connections == 1
    assert c.max_queued_messages == 1
    c = parse("max_keepalive 65535\nmax_packet_size 268435460\n")
    assert c.max_keepalive == 65535
    assert c.max_packet_size == 268435460


def test_booleans() -> None:
    c = parse("allow_anonymous false\nqueue_qos0_messages true\nretain_available false\n")
    assert c.allow_anonymous is False
    assert c.queue_qos0_messages is True
    assert c.retain_available is False
    c = parse("allow_anonymous true\nqueue_qos0_messages false\nretain_available true\n")
    assert c.allow_anonymous is True
    assert c.queue_qos0_messages is False
    assert c.retain_available is True


def test_bad_booleans() -> None:
    for word in ("True", "FALSE", "yes", "1", "on"):
        msg = error_of("\nretain_available %s\n" % word)
        assert msg == "broker.conf:2: retain_available: expected true or false, got '%s'" % word, msg


def test_log_dest() -> None:
    assert parse("log_dest stdout\n").log_dest == "stdout"
    # as mosquitto: the first line replaces the default, the next ones add destinations
    assert parse("log_dest stdout\nlog_dest stderr\n").log_dest == "stdout stderr"
    assert parse("log_dest stderr\nlog_dest none\n").log_dest == ""
    assert parse("log_dest topic\nlog_dest topic\n").log_dest == "topic"
    c = parse("log_dest file /var/log/my mqtt.log\nlog_dest stdout\n")
    assert (c.log_dest, c.log_file) == ("file stdout", "/var/log/my mqtt.log")


def test_log_dest_refused() -> None:
    msg = error_of("log_type all\nlog_dest dlt\n")
    assert msg == ("broker.conf:2: log_dest: expected stderr, stdout, file PATH, syslog, topic or"
                   " none, got 'dlt'"), msg
    msg = error_of("log_dest file\n")
    assert msg == "broker.conf:1: log_dest file needs a path", msg
    msg = error_of("log_dest\n")
    assert msg == "broker.conf:1: 'log_dest' needs a value", msg
    msg = error_of("log_dest stderr now\n")
    assert msg == "broker.conf:1: 'log_dest' takes one value, got 2", msg


# --- log_type -------------------------------------------------------------------------------

def test_log_type_first_line_replaces_default() -> None:
    assert parse("log_type debug\n").log_types == LOG_DEBUG


def test_log_type_accumulates() -> None:
    c = parse("log_type error\nlog_type warning\nlog_type subscribe\nlog_type unsubscribe\n")
    assert c.log_types == LOG_ERR | LOG_WARNING | LOG_SUBSCRIBE | LOG_UNSUBSCRIBE
    c = parse("log_type notice\nlog_type information\n")
    assert c.log_types == LOG_NOTICE | LOG_INFO


def test_log_type_all_and_none() -> None:
    assert parse("log_type all\n").log_types == LOG_ALL
    assert parse("log_type none\n").log_types == 0
    assert parse("log_type all\nlog_type none\n").log_types == 0
    assert parse("log_type none\nlog_type error\n").log_types == LOG_ERR
    assert parse("log_type debug\nlog_type all\n").log_types == LOG_ALL


def test_log_type_refused() -> None:
    msg = error_of("log_type verbose\n")
    assert msg.startswith("broker.conf:1: log_type: unknown type 'verbose'"), msg
    msg = error_of("log_type websockets\n")
    assert msg == "broker.conf:1: log_type 'websockets' is not supported by this broker (yet)", msg


def test_log_type_each_parse_starts_fresh() -> None:
    c = parse("log_type error\n")
    parse("log_type debug\n", "second.conf", c)
    assert c.log_types == LOG_DEBUG


# --- syntax ---------------------------------------------------------------------------------

def test_comments_blank_lines_and_whitespace() -> None:
    text = ("# a comment\n"
            "\n"
            "   \n"
            "   # an indented comment\n"
            "\tmax_inflight_messages\t\t5   \n"
            "max_keepalive   60\n")
    c = parse(text)
    assert c.max_inflight_messages == 5
    assert c.max_keepalive == 60


def test_crlf_line_endings() -> None:
    c = parse("# comment\r\nmax_queued_messages 9\r\n\r\nretain_available false\r\n")
    assert c.max_queued_messages == 9
    assert c.retain_available is False
    msg = error_of("\r\nfoo 1\r\n")
    assert msg == "broker.conf:2: unknown option 'foo'", msg


def test_no_final_newline_and_bom() -> None:
    assert parse("max_sessions 3").max_sessions == 3
    assert parse("\ufeffmax_sessions 4\n").max_sessions == 4


def test_last_one_wins() -> None:
    c = parse("max_inflight_messages 5\nmax_inflight_messages 6\n"
              "allow_anonymous false\nallow_anonymous true\n"
              "port 1884\nport 1885\n")
    assert c.max_inflight_messages == 6
    assert c.allow_anonymous is True
    assert hosts(c) == [("", 1885)]


def test_parse_into_existing_config() -> None:
    base = Config()
    base.max_sessions = 4  # as a board profile would
    c = parse("max_inflight_messages 3\n", "x.conf", base)
    assert c is base
    assert c.max_sessions == 4
    assert c.max_inflight_messages == 3


# --- errors ---------------------------------------------------------------------------------

def test_unknown_option() -> None:
    msg = error_of("max_keepalive 60\n\n# c\n\n\n\nfoo bar\n")
    assert msg == "broker.conf:7: unknown option 'foo'", msg
    msg = error_of("Port 1883\n")
    assert msg == "broker.conf:1: unknown option 'Port'", msg


def test_default_filename() -> None:
    try:
        parse("foo\n")
    except ConfigError as e:
        assert str(e) == "<config>:1: unknown option 'foo'", str(e)
        return
    assert False


def test_bad_integer() -> None:
    msg = error_of("max_keepalive 60\nmax_connections 10\nmax_inflight_messages abc\n")
    assert msg == "broker.conf:3: max_inflight_messages: expected an integer, got 'abc'", msg
    for word in ("0x10", "1_000", "+5", "1.5", "-", "12a", "--1"):
        msg = error_of("max_sessions %s\n" % word)
        assert msg == "broker.conf:1: max_sessions: expected an integer, got '%s'" % word, msg


def test_missing_value() -> None:
    msg = error_of("max_keepalive 60\nmax_keepalive\n")
    assert msg == "broker.conf:2: 'max_keepalive' needs a value", msg
    msg = error_of("allow_anonymous   \n")
    assert msg == "broker.conf:1: 'allow_anonymous' needs a value", msg


def test_too_many_values() -> None:
    msg = error_of("max_keepalive 60 70\n")
    assert msg == "broker.conf:1: 'max_keepalive' takes one value, got 2", msg
    msg = error_of("max_keepalive 60 # one minute\n")
    assert msg.startswith("broker.conf:1: 'max_keepalive' takes one value, got 4"), msg
    assert "comment" in msg, msg
    msg = error_of("listener 1883 127.0.0.1 extra\n")
    assert msg.startswith("broker.conf:1: 'listener' takes a port and an address, got 3"), msg


def test_out_of_range() -> None:
    cases = (
        ("max_keepalive 5", "max_keepalive: 5 is out of range (10..65535)"),
        ("max_qos 3", "max_qos: 3 is out of range (0..2)"),
        ("max_topic_alias 65536", "max_topic_alias: 65536 is out of range (0..65535)"),
        ("max_keepalive 65536", "max_keepalive: 65536 is out of range (10..65535)"),
        ("max_keepalive 0", "max_keepalive: 0 is out of range (10..65535)"),
        ("max_packet_size 19", "max_packet_size: 19 is out of range (20..268435460, or 0 for no limit)"),
        ("max_packet_size 268435461",
         "max_packet_size: 268435461 is out of range (20..268435460, or 0 for no limit)"),
        ("max_inflight_messages 65536",
         "max_inflight_messages: 65536 is out of range (1..65535, or 0 for no limit)"),
        ("max_inflight_messages -1",
         "max_inflight_messages: -1 is out of range (1..65535, or 0 for no limit)"),
        ("max_connections 0", "max_connections: 0 is out of range (1..1073741823, or -1 for no limit)"),
        ("max_connections -2", "max_connections: -2 is out of range (1..1073741823, or -1 for no limit)"),
        ("max_subscriptions 0", "max_subscriptions: 0 is out of range (1..1073741823)"),
        ("max_retained_messages -1", "max_retained_messages: -1 is out of range (1..1073741823)"),
        ("max_sessions 0", "max_sessions: 0 is out of range (1..1073741823)"),
        ("max_topic_length 65536", "max_topic_length: 65536 is out of range (1..65535)"),
        ("max_queued_messages -3", "max_queued_messages: -3 is out of range (1..1073741823)"),
        ("port 0", "port: 0 is out of range (1..65535)"),
        ("listener 65536", "listener: 65536 is out of range (1..65535)"),
    )
    for line, reason in cases:
        msg = error_of("# header\n" + line + "\n")
        assert msg == "broker.conf:2: " + reason, msg


def test_max_queued_messages_zero_refused() -> None:
    msg = error_of("max_queued_messages 0\n")
    assert msg.startswith("broker.conf:1: max_queued_messages: 0 (no limit) is not supported"), msg
    assert "bounded" in msg, msg


def test_not_supported_options() -> None:
    for line in ("psk_file /etc/mosquitto/psk", "psk_hint hint",
                 "capath /etc/ssl/certs", "ciphers HIGH", "tls_version tlsv1.2",
                 "dhparamfile dh.pem",
                 "upgrade_outgoing_qos true", "auth_opt_backend redis",
                 "plugin_opt_x 1"):
        name = line.split()[0]
        msg = error_of("\n\n" + line + "\n")
        assert msg == "broker.conf:3: option '%s' is not supported by this broker (yet)" % name, msg


def test_error_stops_at_first_bad_line() -> None:
    msg = error_of("foo 1\nbar 2\n")
    assert msg == "broker.conf:1: unknown option 'foo'", msg


def test_error_leaves_no_partial_message_chain() -> None:
    try:
        parse("max_keepalive x\n", "a.conf")
    except ConfigError as e:
        assert e.args == ("a.conf:1: max_keepalive: expected an integer, got 'x'",), e.args
        return
    assert False


# --- listeners ------------------------------------------------------------------------------

def test_listener_variants() -> None:
    c = parse("listener 1883\nlistener 8883 127.0.0.1\nlistener 1884 0.0.0.0\nlistener 1885 ::1\n")
    assert hosts(c) == [("", 1883), ("127.0.0.1", 8883), ("0.0.0.0", 1884), ("::1", 1885)]
    assert isinstance(c.listeners[0], Listener)


def test_listener_needs_a_port() -> None:
    msg = error_of("# x\n\n\n\n\n\n\n\nlistener\n")
    assert msg == "broker.conf:9: 'listener' needs a port", msg
    msg = error_of("listener http\n")
    assert msg == "broker.conf:1: listener: expected an integer, got 'http'", msg


def test_port_and_bind_address_make_the_default_listener() -> None:
    assert hosts(parse("port 1884\n")) == [("", 1884)]
    assert hosts(parse("bind_address 127.0.0.1\n")) == [("127.0.0.1", 1883)]
    assert hosts(parse("bind_address 127.0.0.1\nport 1890\n")) == [("127.0.0.1", 1890)]
    # the default listener comes first, whatever the order in the file
    c = parse("listener 8883\nport 1884\n")
    assert hosts(c) == [("", 1884), ("", 8883)]


def test_duplicate_listeners() -> None:
    msg = error_of("listener 1883\n\nlistener 1883\n")
    assert msg == "broker.conf:3: listener 0.0.0.0:1883 is defined twice (first on line 1)", msg
    msg = error_of("listener 1883 0.0.0.0\nlistener 1883\n")
    assert msg == "broker.conf:2: listener 0.0.0.0:1883 is defined twice (first on line 1)", msg
    msg = error_of("listener 1883 127.0.0.1\nmax_keepalive 60\nport 1883\nbind_address 127.0.0.1\n")
    assert msg == "broker.conf:4: listener 127.0.0.1:1883 is defined twice (first on line 1)", msg
    # same port, different hosts: fine
    c = parse("listener 1883 127.0.0.1\nlistener 1883 192.168.1.2\n")
    assert len(c.listeners) == 2
    # same host, different ports: fine
    c = parse("listener 1883 127.0.0.1\nlistener 1884 127.0.0.1\n")
    assert len(c.listeners) == 2


# --- unix socket listeners -----------------------------------------------------------------

def paths(cfg: Config) -> "list[tuple[int, str, str, int]]":
    return [(lst.port, lst.host, lst.path, lst.socket_mode) for lst in cfg.listeners]


def test_tcp_listener_has_no_path() -> None:
    lst = parse("listener 1883\n").listeners[0]
    assert lst.path == ""
    assert lst.socket_mode == -1
    assert Listener(1883).path == ""
    assert Listener(1883).socket_mode == -1


def test_unix_listener() -> None:
    c = parse("listener 0 /run/mqtt/broker.sock\n")
    assert paths(c) == [(0, "", "/run/mqtt/broker.sock", -1)]
    assert repr(c.listeners[0]) == "Listener(0, '', '/run/mqtt/broker.sock')", repr(c.listeners[0])
    # a relative path is kept as written (relative to the broker's working directory)
    assert paths(parse("listener 0 broker.sock\n")) == [(0, "", "broker.sock", -1)]
    assert paths(parse("listener 0 ./run/b.sock\n")) == [(0, "", "./run/b.sock", -1)]
    # a file with only a unix listener defines a listener: anonymous clients refused by default
    assert c.allow_anonymous is False
    assert parse("listener 0 /tmp/b.sock\nallow_anonymous true\n").allow_anonymous is True


def test_unix_and_tcp_listeners_in_file_order() -> None:
    c = parse("listener 0 /tmp/a.sock\nlistener 1883 127.0.0.1\nlistener 0 /tmp/b.sock\n"
              "port 1884\n")
    assert paths(c) == [(1884, "", "", -1), (0, "", "/tmp/a.sock", -1),
                        (1883, "127.0.0.1", "", -1), (0, "", "/tmp/b.sock", -1)], paths(c)


def test_unix_listener_errors() -> None:
    msg = error_of("\nlistener 0\n")
    assert msg == ("broker.conf:2: listener: port 0 needs a unix socket path"
                   " ('listener 0 /path/to/broker.sock')"), msg
    msg = error_of("listener 0 /tmp/my broker.sock\n")
    assert msg.startswith("broker.conf:1: 'listener' takes a port and an address, got 3"), msg
    msg = error_of("listener 1883 /tmp/broker.sock\n")
    assert msg == ("broker.conf:1: listener: '/tmp/broker.sock' is not an address; a unix socket"
                   " listener takes port 0 ('listener 0 /tmp/broker.sock')"), msg
    msg = error_of("port 0\n")
    assert msg == "broker.conf:1: port: 0 is out of range (1..65535)", msg


def test_unix_listener_path_length() -> None:
    longest = "/" + "a" * 106
    assert paths(parse("listener 0 %s\n" % longest)) == [(0, "", longest, -1)]
    msg = error_of("listener 0 %s\n" % (longest + "b"))
    assert msg == "broker.conf:1: listener: the unix socket path is 108 bytes long, the limit is 107", msg
    # counted in bytes, not characters
    msg = error_of("listener 0 /%s\n" % ("\u00e9" * 60))
    assert msg == "broker.conf:1: listener: the unix socket path is 121 bytes long, the limit is 107", msg


def test_duplicate_unix_listeners() -> None:
    msg = error_of("listener 0 /tmp/a.sock\nlistener 1883\n\nlistener 0 /tmp/a.sock\n")
    assert msg == "broker.conf:4: listener unix:/tmp/a.sock is defined twice (first on line 1)", msg
    # different paths: fine; a unix listener never clashes with a TCP one
    c = parse("listener 0 /tmp/a.sock\nlistener 0 /tmp/b.sock\nlistener 1883\nport 1883\n"
              "bind_address 127.0.0.1\n")
    assert len(c.listeners) == 4


def test_socket_mode() -> None:
    c = parse("listener 0 /tmp/a.sock\nsocket_mode 0660\n")
    assert paths(c) == [(0, "", "/tmp/a.sock", 0o660)]
    for text, mode in (("600", 0o600), ("0600", 0o600), ("0", 0), ("0000", 0), ("777", 0o777),
                       ("0777", 0o777), ("00640", 0o640)):
        c = parse("listener 0 /tmp/a.sock\nsocket_mode %s\n" % text)
        assert c.listeners[0].socket_mode == mode, (text, c.listeners[0].socket_mode)


def test_socket_mode_applies_to_the_latest_listener_line() -> None:
    c = parse("listener 0 /tmp/a.sock\nsocket_mode 0600\n"
              "listener 0 /tmp/b.sock\n"
              "listener 0 /tmp/c.sock\nmax_keepalive 60\nsocket_mode 0660\nsocket_mode 0666\n")
    assert [lst.socket_mode for lst in c.listeners] == [0o600, -1, 0o666]
    # port / bind_address change the default listener, not the latest `listener` line
    c = parse("listener 0 /tmp/a.sock\nport 1884\nsocket_mode 0600\n")
    assert paths(c) == [(1884, "", "", -1), (0, "", "/tmp/a.sock", 0o600)], paths(c)


def test_socket_mode_errors() -> None:
    needs = ("socket_mode applies to a unix socket listener: put it after a"
             " 'listener 0 PATH' line")
    msg = error_of("max_keepalive 60\nsocket_mode 0660\n")
    assert msg == "broker.conf:2: " + needs, msg
    msg = error_of("listener 0 /tmp/a.sock\nlistener 1883\nsocket_mode 0660\n")
    assert msg == "broker.conf:3: " + needs, msg
    msg = error_of("port 1883\nsocket_mode 0660\n")
    assert msg == "broker.conf:2: " + needs, msg
    for word in ("rw", "0x1b0", "-1", "0o660", "8", "066a", "+660"):
        msg = error_of("listener 0 /tmp/a.sock\nsocket_mode %s\n" % word)
        assert msg == ("broker.conf:2: socket_mode: expected an octal mode such as 0660,"
                       " got '%s'" % word), msg
    msg = error_of("listener 0 /tmp/a.sock\nsocket_mode 1777\n")
    assert msg == "broker.conf:2: socket_mode: 1777 is out of range (0000..0777)", msg
    msg = error_of("listener 0 /tmp/a.sock\nsocket_mode\n")
    assert msg == "broker.conf:2: 'socket_mode' needs a value", msg
    msg = error_of("listener 0 /tmp/a.sock\nsocket_mode 0600 0660\n")
    assert msg == "broker.conf:2: 'socket_mode' takes one value, got 2", msg


def test_socket_mode_does_not_reach_into_an_earlier_file() -> None:
    base = parse("listener 0 /tmp/a.sock\n", "board.conf")
    try:
        parse("socket_mode 0600\n", "user.conf", base)
    except ConfigError as e:
        assert str(e).startswith("user.conf:1: socket_mode applies to a unix socket"), str(e)
    else:
        assert False
    assert base.listeners[0].socket_mode == -1


# --- sys_interval ---------------------------------------------------------------------------

def test_sys_interval() -> None:
    assert parse("sys_interval 0\n").sys_interval == 0
    assert parse("sys_interval 1\n").sys_interval == 1
    assert parse("sys_interval 65535\n").sys_interval == 65535
    assert parse("sys_interval 30\nsys_interval 5\n").sys_interval == 5
    for word in ("-1", "65536"):
        msg = error_of("sys_interval %s\n" % word)
        assert msg == "broker.conf:1: sys_interval: %s is out of range (0..65535)" % word, msg
    msg = error_of("sys_interval 1.5\n")
    assert msg == "broker.conf:1: sys_interval: expected an integer, got '1.5'", msg


# --- allow_anonymous resolution -------------------------------------------------------------

def test_anonymous_allowed_without_listener() -> None:
    assert parse("max_keepalive 60\n").allow_anonymous is True
    assert parse("allow_anonymous false\n").allow_anonymous is False


def test_anonymous_refused_with_listener_unless_set() -> None:
    assert parse("listener 1883\n").allow_anonymous is False
    assert parse("port 1883\n").allow_anonymous is False
    assert parse("bind_address 0.0.0.0\n").allow_anonymous is False
    assert parse("listener 1883\nallow_anonymous true\n").allow_anonymous is True
    assert parse("allow_anonymous true\nlistener 1883\n").allow_anonymous is True
    assert parse("listener 1883\nallow_anonymous false\n").allow_anonymous is False


# --- -p (default_listener) ------------------------------------------------------------------

def test_default_listener_without_listeners() -> None:
    c = parse("max_keepalive 60\n")
    default_listener(c, None)
    assert hosts(c) == [("127.0.0.1", 1883)]
    assert c.allow_anonymous is True
    c = parse("")
    default_listener(c, 1999)
    assert hosts(c) == [("127.0.0.1", 1999)]


def test_default_listener_p_replaces_first_port() -> None:
    c = parse("listener 8883 10.0.0.1\nlistener 8884\n")
    default_listener(c, 1999)
    assert hosts(c) == [("10.0.0.1", 1999), ("", 8884)]
    assert c.allow_anonymous is False


def test_default_listener_without_p_keeps_listeners() -> None:
    c = parse("listener 8883\n")
    default_listener(c, None)
    assert hosts(c) == [("", 8883)]


def test_default_listener_on_embedded_default() -> None:
    c = embedded_default()
    default_listener(c, 2000)
    assert hosts(c) == [("127.0.0.1", 2000)]
    c = embedded_default()
    default_listener(c, None)
    assert hosts(c) == [("127.0.0.1", 1883)]


def test_default_listener_p_skips_unix_listeners() -> None:
    c = parse("listener 0 /tmp/a.sock\nlistener 8883 10.0.0.1\nlistener 8884\n")
    default_listener(c, 1999)
    assert paths(c) == [(0, "", "/tmp/a.sock", -1), (1999, "10.0.0.1", "", -1),
                        (8884, "", "", -1)], paths(c)


def test_default_listener_p_with_only_unix_listeners_adds_loopback() -> None:
    c = parse("listener 0 /tmp/a.sock\nallow_anonymous true\n")
    default_listener(c, 1999)
    assert paths(c) == [(0, "", "/tmp/a.sock", -1), (1999, "127.0.0.1", "", -1)], paths(c)
    assert c.allow_anonymous is True
    # without -p the file's listeners are all there is: no TCP listener
    c = parse("listener 0 /tmp/a.sock\n")
    default_listener(c, None)
    assert paths(c) == [(0, "", "/tmp/a.sock", -1)]
    assert c.allow_anonymous is False


def test_default_listener_errors() -> None:
    c = Config()
    try:
        default_listener(c, 70000)
    except ConfigError as e:
        assert str(e) == "-p: port 70000 is out of range (0..65535)", str(e)
    else:
        assert False
    c = parse("listener 8883\nlistener 8884\n")
    try:
        default_listener(c, 8884)
    except ConfigError as e:
        assert str(e) == "-p 8884: listener 0.0.0.0:8884 is defined twice", str(e)
    else:
        assert False


# --- load -----------------------------------------------------------------------------------

def test_load_missing_file() -> None:
    path = "/nonexistent-dir-for-test/broker.conf"
    try:
        load(path, read_file)
    except ConfigError as e:
        msg = str(e)
        assert msg.startswith(path + ": cannot read: "), msg
        assert len(msg) > len(path + ": cannot read: "), msg
        assert "\n" not in msg
        return
    assert False


def test_named_files_are_read_by_the_ports_reader() -> None:
    # The core opens no file: parse() takes the port's read(path) -> bytes.
    files = {"/acl": b"topic read a/#\n", "/bad": b"topic read \xff\n"}
    asked = []

    def read(path: str) -> bytes:
        asked.append(path)
        if path not in files:
            raise OSError(2, "No such file or directory")
        return files[path]
    cfg = parse("acl_file /acl\n", read=read)
    assert cfg.acl is not None and cfg.acl.anonymous == [(1, b"a/#")]
    assert asked == ["/acl"]
    for text, want in (
            ("\nacl_file /none\n", "x.conf:2: acl_file: cannot read /none: "),
            ("\n\nacl_file /bad\n", "x.conf:3: acl_file: cannot read /bad: "),  # not UTF-8
            ("password_file /acl\n", "x.conf:1: password_file: cannot read /acl: the parser"
             " was given no way to read files")):
        try:
            parse(text, "x.conf", read=read if "password_file" not in text else None)
        except ConfigError as e:
            assert str(e).startswith(want), str(e)
        else:
            assert False, text


def test_load_reads_and_names_the_file() -> None:
    path = "/tmp/_test_config_%s.conf" % id(load)
    with open(path, "w") as f:
        f.write("listener 1884 127.0.0.1\r\nallow_anonymous true\r\nfoo\r\n")
    try:
        load(path, read_file)
    except ConfigError as e:
        assert str(e) == path + ":3: unknown option 'foo'", str(e)
    else:
        assert False
    with open(path, "w") as f:
        f.write("listener 1884 127.0.0.1\nallow_anonymous true\n")
    c = load(path, read_file)
    os.remove(path)
    assert hosts(c) == [("127.0.0.1", 1884)]
    assert c.allow_anonymous is True


# --- split between broker.settings (kept) and broker.config (unloadable) --------------------

def test_config_and_listener_come_from_settings() -> None:
    from broker import settings
    assert Config is settings.Config and Listener is settings.Listener
    assert config.DEFAULT_PORT == settings.DEFAULT_PORT == 1883
    assert config.NO_PACKET_LIMIT == settings.NO_PACKET_LIMIT == 268435460
    assert type(parse("")) is settings.Config
    assert type(embedded_default()) is settings.Config
    assert repr(Listener(1884, "10.0.0.1")) == "Listener(1884, '10.0.0.1')"


def test_settings_classes_have_no_methods() -> None:
    # A method would keep broker.settings' globals alive, nothing more; but a parser method on
    # Config would pin broker.config for as long as the engine holds its Config. A class default
    # (Listener.websockets, Config.persistence) is data, which pins nothing.
    for cls in (Config, Listener):
        extra = [n for n in dir(cls) if not n.startswith("__") and callable(getattr(cls, n))]
        assert extra == [], (cls, extra)
    assert Listener.websockets is False and Listener.http_dir == ""


def test_unload_parser_forgets_config_and_cli() -> None:
    import sys
    import broker
    from broker import cli
    saved = {}
    for name in ("config", "cli"):
        saved[name] = (sys.modules.get("broker." + name), getattr(broker, name, None))
    try:
        cfg = cli.parse_args(["-p", "1999"], read_file)
        cli.unload_parser()
        for name in ("config", "cli"):
            assert "broker." + name not in sys.modules, name
            assert not hasattr(broker, name), name
        assert "broker.settings" in sys.modules
        assert hosts(cfg) == [("127.0.0.1", 1999)]
        cli.unload_parser()  # nothing left to forget: no error
    finally:
        for name in ("config", "cli"):
            mod, attr = saved[name]
            if mod is not None:
                sys.modules["broker." + name] = mod
            if attr is not None:
                setattr(broker, name, attr)


def test_persistent_client_expiration_takes_mosquittos_durations():
    for text, seconds in (("14d", 14 * 86400), ("2m", 2 * 30 * 86400), ("1y", 365 * 86400),
                          ("1w", 7 * 86400), ("3h", 3 * 3600), ("90s", 90)):
        assert parse("persistent_client_expiration %s\n" % text
                     ).persistent_client_expiration == seconds, text
    assert parse("").persistent_client_expiration == 0  # never, as in mosquitto
    for bad in ("14", "d", "0h", "1x", "-1d", "1.5d", "100y"):
        msg = error_of("persistent_client_expiration %s\n" % bad)
        assert msg.startswith("broker.conf:1: persistent_client_expiration: "), msg
        assert bad in msg, msg


def test_per_client_shares_of_the_tables():
    c = parse("max_subscriptions_per_client 5\nmax_retained_per_client 2\n")
    assert (c.max_subscriptions_per_client, c.max_retained_per_client) == (5, 2)
    d = parse("")
    assert (d.max_subscriptions_per_client, d.max_retained_per_client) == (0, 0)  # half
    msg = error_of("max_retained_per_client 0\n")
    assert msg.startswith("broker.conf:1: max_retained_per_client: 0 is out of range"), msg
