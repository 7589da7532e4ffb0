"""mosquitto's process, log and client id options (issue 19): how they parse, include_dir's
order, and what MicroPython refuses at start-up."""
import os
import sys

from broker.config import parse
from ports.readfile import read_file
from support import error_of, remove_file, temp_path, write_file

MPY = sys.implementation.name == "micropython"


def test_text_options_take_the_rest_of_the_line() -> None:
    c = parse("auto_id_prefix gw-\nlog_timestamp false\nconnection_messages false\n"
              "set_tcp_nodelay true\nallow_zero_length_clientid false\n"
              "message_size_limit 1000\n")
    assert (c.auto_id_prefix, c.log_timestamp, c.connection_messages, c.set_tcp_nodelay,
            c.allow_zero_length_clientid, c.message_size_limit) == (
        "gw-", False, False, True, False, 1000)
    # options not given are not stored: their readers take mosquitto's defaults
    assert not hasattr(parse(""), "auto_id_prefix")


def test_host_only_options() -> None:
    lines = (("log_dest syslog", "log_dest syslog", "MicroPython has no syslog"),
             ("log_timestamp_format %Y-%m-%d %H:%M:%S", "log_timestamp_format",
              "MicroPython has no strftime"),
             ("pid_file /run/mosquitto/mosquitto.pid", "pid_file",
              "MicroPython cannot tell its process id"),
             ("user mosquitto", "user", "MicroPython cannot change user: start it as that user"),
             ("log_facility 5", "log_facility", "MicroPython has no syslog"))
    for line, what, why in lines:
        if MPY:
            msg = error_of("\n%s\n" % line)
            assert msg == "broker.conf:2: %s is not supported on MicroPython (%s)" % (what, why), msg
        else:
            parse(line + "\n")
    if not MPY:
        c = parse("log_timestamp_format %Y-%m-%d %H:%M:%S\npid_file /run/m.pid\n")
        assert (c.log_timestamp_format, c.pid_file) == ("%Y-%m-%d %H:%M:%S", "/run/m.pid")


def test_message_size_limit_and_log_facility_ranges() -> None:
    msg = error_of("message_size_limit 268435456\n")
    assert msg == "broker.conf:1: message_size_limit: 268435456 is out of range (0..268435455)", msg
    assert parse("message_size_limit 0\n").message_size_limit == 0
    if not MPY:
        msg = error_of("log_facility 8\n")
        assert msg == "broker.conf:1: log_facility: 8 is out of range (0..7)", msg


def test_socket_domain() -> None:
    c = parse("listener 1883\nsocket_domain ipv4\nlistener 1884\nsocket_domain ipv6\n")
    assert [(lst.host, getattr(lst, "v6only", False)) for lst in c.listeners] == [
        ("", False), ("::", True)]
    for text, why in (
            ("socket_domain ipv4\n", "socket_domain applies to a TCP listener: put it after a"
                                     " 'listener PORT' line"),
            ("listener 1883\nsocket_domain ipv5\n", "socket_domain: expected ipv4 or ipv6,"
                                                   " got 'ipv5'"),
            ("listener 1883 ::1\nsocket_domain ipv4\n", "socket_domain ipv4: the listener's"
                                                       " address ::1 is not ipv4")):
        msg = error_of(text)
        assert msg.endswith(": " + why) and msg.startswith("broker.conf:"), msg


def test_include_dir_in_mosquittos_order() -> None:
    folder = temp_path("conf.d")
    names = ("b.conf", "A.conf", "01.conf", "a.conf", "B.conf", "00.conf", "skip.txt")
    try:
        os.mkdir(folder)
    except OSError:
        pass
    try:
        for name in names:
            write_file(folder + "/" + name, "auto_id_prefix %s\n" % name)
        order = []
        for _ in range(6):
            c = parse("include_dir %s\n" % folder, "main.conf", None, read_file)
            order.append(c.auto_id_prefix)
            remove_file(folder + "/" + c.auto_id_prefix)
        assert order == ["b.conf", "B.conf", "a.conf", "A.conf", "01.conf", "00.conf"], order
        # an error names the included file and its line; it may not include in turn
        write_file(folder + "/x.conf", "\nmax_qos 3\n")
        msg = error_of("include_dir %s\n" % folder)
        assert msg == "%s/x.conf:2: max_qos: 3 is out of range (0..2)" % folder, msg
        write_file(folder + "/x.conf", "include_dir %s\n" % folder)
        msg = error_of("include_dir %s\n" % folder)
        assert msg == ("%s/x.conf:1: include_dir: only the main configuration file may include"
                       % folder), msg
        remove_file(folder + "/x.conf")
        msg = error_of("include_dir %s/none\n" % folder)
        assert msg.startswith("broker.conf:1: include_dir: cannot read %s/none: " % folder), msg
    finally:
        for name in names + ("x.conf",):
            remove_file(folder + "/" + name)
        os.rmdir(folder)


# --- what the engine does with them ---------------------------------------------------------

def test_zero_length_client_id_and_prefix() -> None:
    from broker.const import CONNACK
    from harness import Hub
    from packets import encode_connect
    hub = Hub("auto_id_prefix gw-\n")
    c = hub.client()
    c.send(encode_connect(""))
    got = c.recv()
    assert got[0].type == CONNACK and got[0].return_code == 0, got
    assert "gw-00000001" in hub.broker.sessions, list(hub.broker.sessions)
    hub = Hub("allow_zero_length_clientid false\n")
    c = hub.client()
    c.send(encode_connect(""))
    got = c.recv()
    assert got[0].return_code == 2 and c.closed, got  # identifier rejected


def test_message_size_limit_drops_after_the_qos_flow() -> None:
    from broker.const import PUBACK
    from harness import Hub
    from packets import encode_connect, encode_publish, encode_subscribe
    hub = Hub("message_size_limit 4\n")
    sub = hub.client()
    sub.send(encode_connect("sub"))
    sub.send(encode_subscribe(1, [(b"t", 1)]))
    sub.recv()
    pub = hub.client()
    pub.send(encode_connect("pub"))
    pub.recv()
    pub.send(encode_publish(b"t", b"12345", qos=1, mid=7))
    got = pub.recv()
    assert got[0].type == PUBACK and got[0].mid == 7, got
    assert sub.recv() == []
    pub.send(encode_publish(b"t", b"1234", qos=1, mid=8))
    assert [p.payload for p in sub.recv()] == [b"1234"]


def test_connection_messages_false() -> None:
    from harness import Hub
    from broker.const import DISCONNECT
    from packets import encode_connect, encode_simple
    hub = Hub("connection_messages false\n")
    c = hub.client()
    c.send(encode_connect("quiet"))
    c.recv()
    c.send(encode_simple(DISCONNECT))
    assert not [line for line in hub.lines if "quiet" in line], hub.lines
