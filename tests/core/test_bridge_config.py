"""Bridge sections of the configuration (broker.config_bridge). Plain asserts: both runtimes."""
import sys

from broker.bridge_settings import BOTH, IN, OUT
from broker.config import parse
from ports.readfile import read_file
from support import error_of


HERE = __file__  # a file every runtime can read


def test_a_complete_section() -> None:
    cfg = parse("connection cloud\n"
                "address 10.0.0.5:1884 backup.example\n"
                "topic sensors/# out 1\n"
                "topic cmd/+ in 2 site/ hub7/\n"
                "topic \"\" both 0 local/state remote/state\n"
                "remote_clientid hub7\nremote_username u\nremote_password p\n"
                "cleansession true\nkeepalive_interval 30\nrestart_timeout 2 20\n"
                "notifications false\ntry_private false\nbridge_protocol_version mqttv311\n"
                "bridge_max_queued_messages 50\n", "hub.conf")
    assert len(cfg.bridges) == 1
    b = cfg.bridges[0]
    assert b.name == "cloud" and b.line == 1
    assert b.addresses == [("10.0.0.5", 1884), ("backup.example", 1883)]
    t = b.topics
    assert (t[0].local_filter, t[0].remote_filter, t[0].direction, t[0].qos) == \
        (b"sensors/#", b"sensors/#", OUT, 1)
    assert (t[1].local_filter, t[1].remote_filter, t[1].direction, t[1].qos) == \
        (b"site/cmd/+", b"hub7/cmd/+", IN, 2)
    assert (t[2].local_filter, t[2].remote_filter, t[2].direction) == \
        (b"local/state", b"remote/state", BOTH)
    assert b.remote_clientid == "hub7" and b.remote_username == "u" and b.remote_password == "p"
    assert b.cleansession and b.keepalive_interval == 30
    assert (b.restart_base, b.restart_cap) == (2, 20)
    assert not b.notifications and not b.try_private
    assert b.protocol_level == 4 and b.max_queued_messages == 50


def test_defaults_are_mosquittos() -> None:
    b = parse("connection c\naddress h\ntopic t\n").bridges[0]
    assert b.topics[0].direction == OUT and b.topics[0].qos == 0
    assert b.addresses == [("h", 1883)]
    assert not b.cleansession and b.keepalive_interval == 60
    assert (b.restart_base, b.restart_cap) == (5, 30)
    assert b.notifications and b.try_private and b.protocol_level == 4
    assert b.remote_clientid is None and b.max_queued_messages == 0


def test_each_protocol_version_as_mosquitto_spells_it() -> None:
    for name, level in (("mqttv50", 5), ("mqttv311", 4), ("mqttv31", 3)):
        b = parse("connection c\naddress h\ntopic t\nbridge_protocol_version %s\n"
                  % name).bridges[0]
        assert b.protocol_level == level, name


def test_several_bridges_and_global_options_between_them() -> None:
    cfg = parse("connection a\naddress h1\ntopic x\nmax_queued_messages 7\n"
                "connection b\naddress h2\ntopic y in\n")
    assert [b.name for b in cfg.bridges] == ["a", "b"]
    assert cfg.max_queued_messages == 7
    assert cfg.bridges[1].topics[0].direction == IN


def test_errors_name_file_and_line() -> None:
    cases = (
        ("topic a/b\n", "hub.conf:1: 'topic' belongs to a bridge: put it after a 'connection"
                        " NAME' line"),
        ("connection c\naddress h\ntopic a sideways\n",
         "hub.conf:3: topic: direction must be out, in or both, got 'sideways'"),
        ("connection c\naddress h\ntopic a out 3\n", "hub.conf:3: topic: 3 is out of range (0..2)"),
        ("connection c\naddress h\ntopic a out 1 L/\n",
         "hub.conf:3: topic: expected 'topic PATTERN [out|in|both [QOS [LOCAL_PREFIX"
         " REMOTE_PREFIX]]]', got 4 values"),
        ("connection c\naddress h\ntopic a/# out 1 L/+/ R/\n",
         "hub.conf:3: topic: the local prefix 'L/+/' must not contain a wildcard"),
        ("connection c\naddress h\ntopic a/#/b\n",
         "hub.conf:3: topic: 'a/#/b' is not a valid topic filter"),
        ("connection c\naddress h\ntopic \"\" out 0 L \"\"\n",
         "hub.conf:3: topic: an empty pattern (\"\") needs both a local and a remote prefix"),
        ("connection c\ntopic t\n", "hub.conf:1: connection 'c' has no address"),
        ("\nconnection c\naddress h\n", "hub.conf:2: connection 'c' has no topic"),
        ("connection c\naddress h\ntopic t\nremote_password p\n",
         "hub.conf:1: connection 'c' has a remote_password but no remote_username"),
        ("connection a\naddress h\ntopic t\nremote_clientid hub\n"
         "connection b\naddress h2\ntopic t\nlocal_clientid local.hub\n",
         "hub.conf:5: connection 'b' has the local client id 'local.hub' of connection 'a'"),
        ("connection c\naddress h:0\n", "hub.conf:2: address: 0 is out of range (1..65535)"),
        ("connection c\naddress h\nconnection c\n",
         "hub.conf:3: connection 'c' is defined twice (first on line 1)"),
        ("connection a/b\n", "hub.conf:1: connection: the name 'a/b' must not contain '+', '#'"
                             " or '/'"),
        ("connection c\nkeepalive_interval 4\n",
         "hub.conf:2: keepalive_interval: 4 is out of range (5..65535)"),
        ("connection c\nrestart_timeout 10 5\n",
         "hub.conf:2: restart_timeout: 5 is out of range (10..86400)"),
        ("connection c\ntry_private yes\n",
         "hub.conf:2: try_private: expected true or false, got 'yes'"),
        ("connection c\nbridge_protocol_version mqttv5\n",
         "hub.conf:2: bridge_protocol_version: expected mqttv50, mqttv311 or mqttv31, got"
         " 'mqttv5'"),
        ("connection c\nbridge_insecure yes\n",
         "hub.conf:2: bridge_insecure: expected true or false, got 'yes'"),
        ("connection c\naddress h\ntopic t\nbridge_cafile %s\nbridge_certfile %s\n"
         % (HERE, HERE),
         "hub.conf:1: connection 'c' needs both bridge_certfile and bridge_keyfile, or neither"),
        ("connection c\naddress h\ntopic t\nbridge_certfile %s\nbridge_keyfile %s\n"
         % (HERE, HERE),
         "hub.conf:1: connection 'c' has a bridge_certfile but no bridge_cafile (TLS is on"
         " only with a bridge_cafile)"),
        ("connection c\nround_robin true\n",
         "hub.conf:2: option 'round_robin' is not supported by this broker (yet)"),
        ("connection c\nbridge_max_queued_messages 0\n",
         "hub.conf:2: bridge_max_queued_messages: 0 is out of range (1..1073741823)"),
    )
    for text, want in cases:
        got = error_of(text, "hub.conf")
        assert got == want, (got, want)


def test_tls_options() -> None:
    b = parse("connection c\naddress h:8883\ntopic t\nbridge_cafile %s\nbridge_insecure true\n"
              "bridge_certfile %s\nbridge_keyfile %s\n" % (HERE, HERE, HERE), "hub.conf",
              read=read_file).bridges[0]
    assert (b.cafile, b.certfile, b.keyfile, b.insecure) == (HERE, HERE, HERE, True)
    b = parse("connection c\naddress h\ntopic t\n").bridges[0]
    assert (b.cafile, b.certfile, b.keyfile, b.insecure) == (None, None, None, False)
    # a file that cannot be read is named with its line, whatever the runtime's words for why
    for name in ("bridge_cafile", "bridge_certfile", "bridge_keyfile"):
        got = error_of("connection c\n%s /nonexistent/x.pem\n" % name, "hub.conf")
        want = "hub.conf:2: %s: cannot read /nonexistent/x.pem: " % name
        assert got.startswith(want), got


def test_parser_is_not_loaded_without_a_bridge() -> None:
    sys.modules.pop("broker.config_bridge", None)
    parse("max_connections 5\n")
    assert "broker.config_bridge" not in sys.modules
