"""The bridge options of a configuration file: `connection NAME` and the lines that follow it.

Imported by broker.config only when a file names a bridge option, and dropped with it after
start-up (broker.cli.unload_parser). Errors are ConfigErrors whose message is the reason only;
broker.config adds FILE:LINE. What the options mean: docs/configuration.md, "Bridges".
"""
from broker.bridge_settings import BOTH, IN, OUT, BridgeSettings, TopicRule
from broker.config import Config, ConfigError, option_file
from broker.topics import valid_topic_filter, valid_topic_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

# Bridge options this broker recognises but does not implement (yet).
_UNSUPPORTED = (
    " bridge_attempt_unsubscribe bridge_bind_address bridge_capath"
    " bridge_identity bridge_psk bridge_alpn bridge_tls_version bridge_require_ocsp"
    " bridge_max_packet_size idle_timeout local_cleansession local_password local_username"
    " round_robin start_type threshold "
)
_FILES = " bridge_cafile bridge_certfile bridge_keyfile "
_BOOLS = " cleansession notifications notifications_local_only try_private" \
         " bridge_outgoing_retain bridge_insecure "
_STRINGS = " remote_clientid local_clientid remote_username remote_password notification_topic "
_OLD_NAMES = {"clientid": "remote_clientid", "username": "remote_username",
              "password": "remote_password", "addresses": "address"}
_DIRECTIONS = {"out": OUT, "in": IN, "both": BOTH}
_DEFAULT_PORT = 1883
_MAX_ID = 65535  # a client id, username or password is an MQTT string


def _int(name: str, text: str, lo: int, hi: int) -> int:
    for c in text:
        if c < "0" or c > "9":
            raise ConfigError("%s: expected an integer, got '%s'" % (name, text))
    if not text:
        raise ConfigError("%s: expected an integer" % name)
    v = int(text)
    if not lo <= v <= hi:
        raise ConfigError("%s: %d is out of range (%d..%d)" % (name, v, lo, hi))
    return v


def _address(text: str) -> "tuple[str, int]":
    # host, host:port, or an IPv6 address, whose port mosquitto requires: the text after the last
    # colon is then the port.
    host = text
    port = _DEFAULT_PORT
    i = text.rfind(":")
    if i >= 0:
        host = text[:i]
        port = _int("address", text[i + 1:], 1, 65535)
    if host[:1] == "[" and host[-1:] == "]":
        host = host[1:-1]
    if not host:
        raise ConfigError("address: no host in '%s'" % text)
    return host, port


def _prefix(name: str, text: str) -> bytes:
    if text == '""':
        return b""
    b = text.encode()
    if b.find(b"+") >= 0 or b.find(b"#") >= 0:
        raise ConfigError("topic: the %s '%s' must not contain a wildcard" % (name, text))
    return b


def _topic(words: "list[str]") -> TopicRule:
    n = len(words) - 1
    if n == 0:
        raise ConfigError("'topic' needs a pattern")
    if n == 4 or n > 5:
        raise ConfigError("topic: expected 'topic PATTERN [out|in|both [QOS [LOCAL_PREFIX"
                          " REMOTE_PREFIX]]]', got %d values" % n)
    pattern = b"" if words[1] == '""' else words[1].encode()
    direction = OUT
    if n >= 2:
        if words[2] not in _DIRECTIONS:
            raise ConfigError("topic: direction must be out, in or both, got '%s'" % words[2])
        direction = _DIRECTIONS[words[2]]
    qos = _int("topic", words[3], 0, 2) if n >= 3 else 0
    local = remote = b""
    if n == 5:
        local = _prefix("local prefix", words[4])
        remote = _prefix("remote prefix", words[5])
    if not pattern and (not local or not remote):
        raise ConfigError('topic: an empty pattern ("") needs both a local and a remote prefix')
    rule = TopicRule(pattern, direction, qos, local, remote)
    for f in (rule.local_filter, rule.remote_filter):
        ok = valid_topic_filter(f) if pattern else valid_topic_name(f, 0, len(f))
        if not ok:
            raise ConfigError("topic: '%s' is not a valid topic %s"
                              % (str(f, "utf-8"), "filter" if pattern else "name"))
    return rule


def bridge_option(config: Config, words: "list[str]", line: int,
                  read: "Callable[[str], bytes] | None") -> None:
    """Apply one bridge line to config.bridges (a `connection` line starts a new bridge); read
    is the port's file reader (broker.config.parse)."""
    name = _OLD_NAMES.get(words[0], words[0])
    n = len(words) - 1
    if (" %s " % name) in _UNSUPPORTED:
        raise ConfigError("option '%s' is not supported by this broker (yet)" % name)
    if name == "connection":
        if n != 1:
            raise ConfigError("'connection' takes one name, got %d values" % n)
        cname = words[1]
        if cname.find("+") >= 0 or cname.find("#") >= 0 or cname.find("/") >= 0:
            raise ConfigError("connection: the name '%s' must not contain '+', '#' or '/'"
                              % cname)
        for b in config.bridges:
            if b.name == cname:
                raise ConfigError("connection '%s' is defined twice (first on line %d)"
                                  % (cname, b.line))
        config.bridges.append(BridgeSettings(cname, line))
        return
    if not config.bridges:
        raise ConfigError("'%s' belongs to a bridge: put it after a 'connection NAME' line"
                          % words[0])
    b = config.bridges[-1]
    if name == "topic":
        b.topics.append(_topic(words))
        return
    if n == 0:
        raise ConfigError("'%s' needs a value" % words[0])
    if name == "address":
        b.addresses = [_address(w) for w in words[1:]]
        return
    if name == "restart_timeout":
        if n > 2:
            raise ConfigError("restart_timeout takes a constant, or a base and a cap")
        base = _int(name, words[1], 1, 86400)
        cap = _int(name, words[2], base, 86400) if n == 2 else 0
        b.restart_base = base
        b.restart_cap = cap
        return
    if n > 1:
        raise ConfigError("'%s' takes one value, got %d" % (words[0], n))
    value = words[1]
    if (" %s " % name) in _BOOLS:
        if value not in ("true", "false"):
            raise ConfigError("%s: expected true or false, got '%s'" % (name, value))
        on = value == "true"
        if name == "bridge_outgoing_retain":
            b.outgoing_retain = on
        elif name == "bridge_insecure":
            b.insecure = on
        else:
            setattr(b, name, on)
    elif (" %s " % name) in _STRINGS:
        if len(value.encode()) > _MAX_ID:
            raise ConfigError("%s: longer than %d bytes" % (name, _MAX_ID))
        if name == "notification_topic":
            t = value.encode()
            if not valid_topic_name(t, 0, len(t)):
                raise ConfigError("notification_topic: '%s' is not a valid topic name" % value)
        setattr(b, name, value)
    elif (" %s " % name) in _FILES:
        option_file(name, value, read)
        setattr(b, name[7:], value)
    elif name == "keepalive_interval":
        b.keepalive_interval = _int(name, value, 5, 65535)
    elif name == "bridge_max_queued_messages":
        b.max_queued_messages = _int(name, value, 1, 0x3FFFFFFF)
    elif name == "bridge_protocol_version":
        if value == "mqttv311":
            b.protocol_level = 4
        elif value == "mqttv31":
            b.protocol_level = 3
        elif value == "mqttv50":
            b.protocol_level = 5
        else:
            raise ConfigError("bridge_protocol_version: expected mqttv50, mqttv311 or mqttv31,"
                              " got '%s'" % value)
    else:
        raise ConfigError("unknown option '%s'" % words[0])


def check_bridges(config: Config, filename: str) -> None:
    """What a whole section needs, once the file is read: an address, a topic, and a local
    client id that no other bridge has (remote ones may repeat: they are on other brokers)."""
    local_ids = {}  # type: dict[str, str]
    for b in config.bridges:
        why = ""
        local = b.local_clientid
        if local is None and b.remote_clientid is not None:
            local = "local." + b.remote_clientid
        if not b.addresses:
            why = "has no address"
        elif not b.topics:
            why = "has no topic"
        elif b.remote_password is not None and b.remote_username is None:
            why = "has a remote_password but no remote_username"
        elif (b.certfile is None) != (b.keyfile is None):
            why = "needs both bridge_certfile and bridge_keyfile, or neither"
        elif b.certfile is not None and b.cafile is None:
            why = "has a bridge_certfile but no bridge_cafile (TLS is on only with a bridge_cafile)"
        elif local is not None and local in local_ids:
            why = "has the local client id '%s' of connection '%s'" % (local, local_ids[local])
        if why:
            raise ConfigError("%s:%d: connection '%s' %s" % (filename, b.line, b.name, why))
        if local is not None:
            local_ids[local] = b.name
