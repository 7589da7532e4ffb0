"""Broker options read from a file in mosquitto.conf syntax.

Start-up code only: nothing here runs on the hot path. Every error stops parsing with a one-line
ConfigError "FILE:LINE: reason". See docs/configuration.md for the options and their defaults.

The parser takes text and opens no file: the files a configuration names (password_file, acl_file,
TLS certificates and keys) are read by the port's `read(path) -> bytes`, which raises OSError
when it cannot (ports/readfile.py), given to parse() and load().

The options themselves live in broker.settings (Config, Listener), which has no methods: the
engine keeps a Config, and nothing it keeps refers to this module, so a board can drop the parser
from sys.modules after start-up (broker.cli.unload_parser). Keep it that way: functions here
take a Config, they are never attached to it.
"""
import sys

from broker.const import (
    LOG_ALL, LOG_DEBUG, LOG_ERR, LOG_INFO, LOG_NOTICE, LOG_SUBSCRIBE, LOG_UNSUBSCRIBE,
    LOG_WARNING,
)
# Re-exported ("X as X") for callers that configure the broker.
from broker.settings import (
    DEFAULT_MAX_CONNECTIONS as DEFAULT_MAX_CONNECTIONS, DEFAULT_PORT as DEFAULT_PORT,
    NO_PACKET_LIMIT as NO_PACKET_LIMIT, Config as Config, Listener as Listener,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

_BIG = 0x3FFFFFFF  # the largest small int on a 32-bit board: "no upper bound"

# Integer options: name -> (lowest, highest, "no limit" value, what that value is stored as).
# A stored value of 0 means the option has no "no limit" value.
_INTS = {
    "max_connections": (1, _BIG, -1, DEFAULT_MAX_CONNECTIONS),
    "max_inflight_messages": (1, 65535, 0, 65535),
    "max_queued_messages": (1, _BIG, 0, 0),
    "max_packet_size": (20, NO_PACKET_LIMIT, 0, NO_PACKET_LIMIT),
    "max_keepalive": (10, 65535, 0, 0),
    "max_subscriptions": (1, _BIG, 0, 0),
    "max_retained_messages": (1, _BIG, 0, 0),
    "max_sessions": (1, _BIG, 0, 0),
    "max_topic_length": (1, 65535, 0, 0),
    "sys_interval": (0, 65535, 0, 0),
    "connect_timeout": (1, 65535, 0, 0),
    "max_subscriptions_per_client": (1, _BIG, 0, 0),
    "max_retained_per_client": (1, _BIG, 0, 0),
    "memory_limit": (0, _BIG, 0, 0),
    "max_queued_bytes": (0, _BIG, 0, 0),
    "max_topic_alias": (0, 65535, 0, 0),
    "max_qos": (0, 2, 0, 0),
    "message_size_limit": (0, 268435455, 0, 0),
    "log_facility": (0, 7, 0, 0),
}  # type: dict[str, tuple[int, int, int, int]]

_BOOLS = (" allow_anonymous queue_qos0_messages retain_available allow_zero_length_clientid"
          " connection_messages log_timestamp set_tcp_nodelay ")

# Options whose value is the rest of the line, kept as text (a path, a prefix, a format).
_TEXTS = " auto_id_prefix pid_file user log_timestamp_format "

# What MicroPython cannot do, each with why: refused at start-up there.
_HOST_ONLY = {
    "log_dest syslog": "MicroPython has no syslog",
    "log_timestamp_format": "MicroPython has no strftime",
    "log_facility": "MicroPython has no syslog",
    "pid_file": "MicroPython cannot tell its process id",
    "user": "MicroPython cannot change user: start it as that user",
}  # type: dict[str, str]

_MPY = sys.implementation.name == "micropython"

# The parse under way (the parser is not reentrant): "dest_fresh", the next log_dest line
# replaces the destinations; "including", reading a file of an include_dir;
# "per_listener_settings", 1 when true, plus 2 once a security option was given;
# "allow_anonymous", with per_listener_settings, the default listener's before that listener
# exists (1, 0, or -1 when not given). Keys the parser's own names: on a board a new one would
# be a string kept after the parser is unloaded.
_state = {"dest_fresh": True, "including": False, "per_listener_settings": 0,
          "allow_anonymous": -1}

_LOG_TYPES = {
    "none": 0, "error": LOG_ERR, "warning": LOG_WARNING, "notice": LOG_NOTICE,
    "information": LOG_INFO, "subscribe": LOG_SUBSCRIBE, "unsubscribe": LOG_UNSUBSCRIBE,
    "debug": LOG_DEBUG, "all": LOG_ALL,
}  # type: dict[str, int]

# mosquitto options we recognise but do not implement yet (and the prefixes auth_opt_, plugin_opt_).
_UNSUPPORTED = (
    " psk_file psk_hint plugin auth_plugin"
    " upgrade_outgoing_qos max_inflight_bytes"
    " mount_point bind_interface"
    " websockets_log_level websockets_headers_size"
    " use_username_as_clientid capath ciphers crlfile dhparamfile"
    " tls_version "
)

# (one string: the names of options a board does not use stay out of its interned strings)
_TLS = (" certfile keyfile cafile require_certificate use_identity_as_username"
        " use_subject_as_username ")

_LOG_DESTS = " stderr stdout syslog topic none "

_PERSISTENCE = (" persistence persistence_location persistence_file autosave_interval"
                " autosave_on_changes ")

# The longest unix socket path, in bytes: sockaddr_un's sun_path holds 108 on Linux, NUL included.
_UNIX_PATH_MAX = 107


# Options of a `connection` section (bridges), handled by broker.config_bridge.
_BRIDGE_OPTIONS = (
    " connection address addresses topic remote_clientid local_clientid remote_username"
    " remote_password clientid username password cleansession keepalive_interval"
    " restart_timeout notifications notifications_local_only notification_topic try_private"
    " bridge_protocol_version bridge_max_queued_messages bridge_outgoing_retain bridge_cafile"
    " bridge_insecure bridge_attempt_unsubscribe bridge_bind_address bridge_capath"
    " bridge_certfile bridge_keyfile bridge_identity bridge_psk bridge_alpn bridge_tls_version"
    " bridge_require_ocsp bridge_max_packet_size idle_timeout local_cleansession local_password"
    " local_username round_robin start_type threshold "
)


class ConfigError(Exception):
    """str(e) is one line: "FILE:LINE: reason", or "FILE: reason" when no line is to blame."""


class _Located(ConfigError):
    """A ConfigError that already names its file and line (one in a password or ACL file): parse()
    passes it on as it is instead of prefixing the configuration file's line."""


def _name(listener: Listener) -> str:
    if listener.path:
        return "unix:" + listener.path
    return "%s:%d" % (listener.host or "0.0.0.0", listener.port)


def _not_supported(what: str) -> ConfigError:
    return ConfigError("%s is not supported by this broker (yet)" % what)


def _int(name: str, text: str) -> int:
    digits = text[1:] if text[:1] == "-" else text
    if not digits:
        digits = "x"
    for c in digits:
        if c < "0" or c > "9":
            raise ConfigError("%s: expected an integer, got '%s'" % (name, text))
    return int(text)


# Units of a duration, mosquitto's (a month is 30 days, a year 365) and seconds.
_UNITS = {"s": 1, "h": 3600, "d": 86400, "w": 604800, "m": 2592000, "y": 31536000}


def _duration(name: str, text: str) -> int:
    """Seconds from mosquitto's duration syntax: a positive integer and a unit (14d, 2m, 1y)."""
    unit = _UNITS.get(text[-1:], 0)
    digits = text[:-1]
    if not unit or not digits or not _digits_only(digits) or int(digits) == 0:
        raise ConfigError("%s: expected a positive number and a unit (s, h, d, w, m for months,"
                          " y), such as 14d, got '%s'" % (name, text))
    seconds = int(digits) * unit
    if seconds > _BIG:
        raise ConfigError("%s: %s is longer than %d seconds" % (name, text, _BIG))
    return seconds


def _digits_only(text: str) -> bool:
    for c in text:
        if c < "0" or c > "9":
            return False
    return True


def default_listener(config: Config, port_override: "int | None") -> None:
    """Apply the command line's -p: with no listener, listen on 127.0.0.1 at port_override
    (1883 when None); otherwise -p replaces the port of the first TCP listener, or, when the
    file defines only unix socket listeners, adds 127.0.0.1:port_override. -p never changes a
    unix socket listener."""
    if port_override is not None and not 0 <= port_override <= 65535:
        raise ConfigError("-p: port %d is out of range (0..65535)" % port_override)
    first = None
    for lst in config.listeners:
        if not lst.path:
            first = lst
            break
    if not config.listeners or (first is None and port_override is not None):
        port = DEFAULT_PORT if port_override is None else port_override
        lst = Listener(port, "127.0.0.1")
        config.listeners.append(lst)
        if getattr(config, "per_listener_settings", False):
            from broker.config_security import own
            own(lst, config.allow_anonymous)
    elif first is not None and port_override is not None:
        first.port = port_override
        pair = _duplicate(config)
        if pair is not None:
            raise ConfigError("-p %d: listener %s is defined twice"
                              % (port_override, _name(pair[1])))


def _duplicate(config: Config) -> "tuple[Listener, Listener] | None":
    ls = config.listeners
    for i in range(len(ls)):
        for j in range(i):
            a = ls[j]
            b = ls[i]
            if a.path or b.path:
                if a.path == b.path:
                    return a, b
            elif a.port == b.port and (a.host or "0.0.0.0") == (b.host or "0.0.0.0"):
                return a, b
    return None


def _option(config: Config, words: "list[str]", line: int,
            read: "Callable[[str], bytes] | None") -> None:
    name = words[0]
    n = len(words) - 1
    if (" %s " % name) in _BRIDGE_OPTIONS:
        from broker.config_bridge import bridge_option  # only for a file with a bridge
        bridge_option(config, words, line, read)
        return
    if ((" %s " % name) in _UNSUPPORTED or name.startswith("auth_opt_")
            or name.startswith("plugin_opt_")):
        raise _not_supported("option '%s'" % name)
    known = name in _INTS or (" %s " % name) in _BOOLS or (" %s " % name) in _TEXTS or name in (
        "listener", "port", "bind_address", "log_type", "log_dest", "socket_mode",
        "password_file", "acl_file", "persistent_client_expiration", "include_dir",
        "socket_domain", "per_listener_settings", "protocol", "http_dir") or (
            " %s " % name) in _TLS or (" %s " % name) in _PERSISTENCE
    if not known:
        raise ConfigError("unknown option '%s'" % name)
    if n == 0:
        what = "a port" if name == "listener" else "a value"
        raise ConfigError("'%s' needs %s" % (name, what))
    why = _HOST_ONLY.get(name if name != "log_dest" else "log_dest " + words[1], "")
    if why and _MPY:
        raise ConfigError("%s is not supported on MicroPython (%s)" % (" ".join(words[:2])
                          if name == "log_dest" else name, why))
    # the security options: what per_listener_settings true gives each listener its own of
    if (" %s " % name) in " allow_anonymous password_file acl_file allow_zero_length_clientid" \
            " auto_id_prefix ":
        _state["per_listener_settings"] |= 2
        if _state["per_listener_settings"] & 1:
            from broker.config_security import listener_option  # per_listener_settings true
            listener_option(config, words, line, read)
            return
    if (" %s " % name) in _TEXTS or (name == "log_dest" and words[1] == "file"):
        # the rest of the line: a path or a format may hold spaces
        _text_option(config, name, words)
        return
    if n > (2 if name == "listener" else 1):
        hint = ""
        for w in words:
            if w[0] == "#":
                hint = " (a comment must be on a line of its own)"
        raise ConfigError("'%s' takes %s, got %d%s" % (
            name, "a port and an address" if name == "listener" else "one value", n, hint))
    value = words[1]

    if name in _INTS:
        v = _int(name, value)
        lo, hi, special, stored = _INTS[name]
        if stored and v == special:
            v = stored
        elif name == "max_queued_messages" and v == 0:
            raise ConfigError("max_queued_messages: 0 (no limit) is not supported, every queue"
                              " here is bounded: give a positive number")
        elif not lo <= v <= hi:
            rng = "%d..%d" % (lo, hi)
            if stored:
                rng = "%s, or %d for no limit" % (rng, special)
            raise ConfigError("%s: %d is out of range (%s)" % (name, v, rng))
        setattr(config, name, v)
    elif name in ("listener", "port"):
        port = _int(name, value)
        if port == 0 and name == "listener":
            if n == 1:
                raise ConfigError("listener: port 0 needs a unix socket path"
                                  " ('listener 0 /path/to/broker.sock')")
            lst = Listener(0, "", _unix_path(words[2]))
        elif not 1 <= port <= 65535:
            raise ConfigError("%s: %d is out of range (1..65535)" % (name, port))
        elif name == "port":
            _default_listener(config, line).port = port
            return
        else:
            host = words[2] if n == 2 else ""
            if "/" in host:
                raise ConfigError("listener: '%s' is not an address; a unix socket listener"
                                  " takes port 0 ('listener 0 %s')" % (host, host))
            lst = Listener(port, host)
        config.listeners.append(lst)
        config._lines[id(lst)] = line
        config._last = lst
    elif name == "persistent_client_expiration":
        config.persistent_client_expiration = _duration(name, value)
    elif (" %s " % name) in _PERSISTENCE:
        _persistence_option(config, name, value)
    elif name == "password_file":
        from broker.passfile import dummy_entry, parse_passwords  # only with a password_file
        config.passwords = parse_passwords(option_file(name, value, read, True), value)
        config.password_dummy = dummy_entry(config.passwords)
    elif name == "acl_file":
        from broker import acl_file  # only with an acl_file
        config.acl = acl_file.parse(option_file(name, value, read, True), value)
    elif (" %s " % name) in _TLS:
        _tls_option(config, name, value, read)
    elif name in ("protocol", "http_dir"):
        _websockets_option(config, name, value)
    elif name == "socket_mode":
        last = config._last
        if last is None or not last.path:
            raise ConfigError("socket_mode applies to a unix socket listener: put it after a"
                              " 'listener 0 PATH' line")
        last.socket_mode = _mode(value)
    elif name == "bind_address":
        _default_listener(config, line).host = value
    elif name == "log_type":
        if value == "websockets":
            raise _not_supported("log_type 'websockets'")
        if value not in _LOG_TYPES:
            raise ConfigError("log_type: unknown type '%s' (expected error, warning, notice, "
                              "information, subscribe, unsubscribe, debug, all or none)"
                              % value)
        mask = _LOG_TYPES[value]
        if config._log_fresh or mask == 0:
            config.log_types = mask
        else:
            config.log_types |= mask
        config._log_fresh = False
    elif name == "log_dest":
        _log_dest(config, value)
    elif name == "per_listener_settings":
        if value not in ("true", "false"):
            raise ConfigError("%s: expected true or false, got '%s'" % (name, value))
        on = value == "true"
        was = _state["per_listener_settings"]
        if was & 2 and (on or was & 1):
            raise ConfigError("per_listener_settings must be set before any other security"
                              " settings (allow_anonymous, password_file, acl_file,"
                              " allow_zero_length_clientid, auto_id_prefix)")
        _state["per_listener_settings"] = (was & 2) | (1 if on else 0)
        if on or hasattr(config, "per_listener_settings"):
            config.per_listener_settings = on
    elif name == "include_dir":
        _include_dir(config, value, read)
    elif name == "socket_domain":
        last = config._last
        if last is None or last.path:
            raise ConfigError("socket_domain applies to a TCP listener: put it after a"
                              " 'listener PORT' line")
        if value not in ("ipv4", "ipv6"):
            raise ConfigError("socket_domain: expected ipv4 or ipv6, got '%s'" % value)
        if (":" in last.host) != (value == "ipv6") and last.host not in ("", "0.0.0.0"):
            raise ConfigError("socket_domain %s: the listener's address %s is not %s"
                              % (value, last.host, value))
        if value == "ipv6" and last.host in ("", "0.0.0.0"):
            last.host = "::"
            last.v6only = True
    else:  # a boolean
        if value not in ("true", "false"):
            raise ConfigError("%s: expected true or false, got '%s'" % (name, value))
        setattr(config, name, value == "true")
        if name == "allow_anonymous":
            config._anon_set = True


def _log_dest(config: Config, value: str) -> None:
    if (" %s " % value) not in _LOG_DESTS:
        raise ConfigError("log_dest: expected stderr, stdout, file PATH, syslog, topic or none,"
                          " got '%s'" % value)
    _add_dest(config, value)


def _add_dest(config: Config, value: str) -> None:
    # As mosquitto: the first log_dest line replaces the default (stderr), the next ones add.
    dests = "" if _state["dest_fresh"] else config.log_dest
    _state["dest_fresh"] = False
    if value == "none":
        config.log_dest = ""
    elif value not in dests.split():
        config.log_dest = (dests + " " + value).strip()


def _text_option(config: Config, name: str, words: "list[str]") -> None:
    if name != "log_dest":
        setattr(config, name, " ".join(words[1:]))
        return
    if len(words) < 3:
        raise ConfigError("log_dest file needs a path")
    _add_dest(config, "file")  # one file, as in mosquitto: the last line names it
    config.log_file = " ".join(words[2:])


def _include_dir(config: Config, path: str, read: "Callable[[str], bytes] | None") -> None:
    """Parse each file of the directory ending in .conf, in mosquitto's order: by name, case
    sensitive, the upper case of a letter before its lower case."""
    if _state["including"]:
        raise ConfigError("include_dir: only the main configuration file may include")
    import os  # the parser's one directory listing, at start-up
    try:
        names = os.listdir(path)
    except OSError as e:
        raise ConfigError("include_dir: cannot read %s: %s" % (path, e))
    files = []
    for name in names:
        if name.endswith(".conf"):
            files.append(name)
    files.sort(key=_include_order)
    _state["including"] = True
    try:
        for name in files:
            full = path.rstrip("/") + "/" + name
            try:
                text = read_file(read, full)
            except ConfigError as e:
                raise _Located("%s: cannot read: %s" % (full, e))
            _parse_lines(config, text, full, read)
    finally:
        _state["including"] = False


def _include_order(name: str) -> "list[tuple[str, bool]]":
    key = []
    for c in name:
        key.append((c.lower(), c != c.upper()))
    return key


def _tcp_listener(config: Config, name: str) -> Listener:
    # The listener a per-listener option (TLS, WebSockets) applies to, as in mosquitto; only
    # after a `listener` line here, so that it is never applied to a listener its author did
    # not mean.
    last = config._last
    if last is None:
        raise ConfigError("%s applies to a listener: put it after a 'listener PORT' line" % name)
    if last.path:
        raise _not_supported("%s on a unix socket listener" % name)
    return last


def _tls_option(config: Config, name: str, value: str,
                read: "Callable[[str], bytes] | None") -> None:
    last = _tcp_listener(config, name)
    if name not in ("certfile", "keyfile", "cafile"):  # a boolean
        if value not in ("true", "false"):
            raise ConfigError("%s: expected true or false, got '%s'" % (name, value))
        if _MPY and name[:4] == "use_" and value == "true":
            raise ConfigError("%s is not supported on MicroPython (its tls module does not give"
                              " the client's certificate)" % name)
        setattr(last, name, value == "true")
        return
    option_file(name, value, read)
    setattr(last, name, value)


def _websockets_option(config: Config, name: str, value: str) -> None:
    # `protocol websockets` makes the listener speak MQTT over WebSockets, and http_dir has it
    # serve that directory's files over plain HTTP.
    last = _tcp_listener(config, name)
    if name == "http_dir":
        if not last.websockets:
            raise ConfigError("http_dir applies to a websockets listener: put it after"
                              " 'protocol websockets'")
        last.http_dir = value
    elif value in ("websockets", "mqtt"):
        last.websockets = value == "websockets"
    else:
        raise ConfigError("protocol: expected mqtt or websockets, got '%s'" % value)


class Persistence:
    """mosquitto's persistence options, defaults on the class: with no method, it keeps no
    module alive (broker.settings). The journal is persistence_location + persistence_file;
    autosave_interval counts seconds, or changes with autosave_on_changes (0: only at
    shutdown)."""
    persistence = False
    persistence_location = ""
    persistence_file = "broker.db"
    autosave_interval = 1800
    autosave_on_changes = False


def _persistence_option(config: Config, name: str, value: str) -> None:
    p = config.persistence
    if p is None:
        p = config.persistence = Persistence()
    if name == "autosave_interval":
        v = _int(name, value)
        if not 0 <= v <= _BIG:
            raise ConfigError("%s: %d is out of range (0..%d)" % (name, v, _BIG))
        p.autosave_interval = v
    elif name == "persistence_file":
        if "/" in value:
            raise ConfigError("persistence_file: '%s' is a file name, not a path: the directory"
                              " is persistence_location's" % value)
        p.persistence_file = value
    elif name == "persistence_location":
        p.persistence_location = value if value.endswith("/") else value + "/"
    else:
        if value not in ("true", "false"):
            raise ConfigError("%s: expected true or false, got '%s'" % (name, value))
        setattr(p, name, value == "true")


def option_file(name: str, path: str, read: "Callable[[str], bytes] | None",
                text: bool = False) -> "Any":
    """The file at path that option `name` names, read with the port's read() (as UTF-8 text
    when text is true); ConfigError "NAME: cannot read PATH: reason" when it cannot be, so that
    a wrong path is reported with its line. What a TLS file holds is the port's to check."""
    try:
        return read_file(read, path, text)
    except ConfigError as e:
        raise ConfigError("%s: cannot read %s: %s" % (name, path, e))


def _tls_incomplete(lst: Listener) -> str:
    """Why a listener's TLS options cannot work together, or "" when they can."""
    if not (lst.certfile or lst.keyfile or lst.cafile or lst.require_certificate):
        return ""
    if not lst.certfile or not lst.keyfile:
        return "TLS needs both certfile and keyfile"
    if lst.require_certificate and not lst.cafile:
        return "require_certificate true needs a cafile to check client certificates against"
    return ""


def _unix_path(path: str) -> str:
    size = len(path.encode())
    if size > _UNIX_PATH_MAX:
        raise ConfigError("listener: the unix socket path is %d bytes long, the limit is %d"
                          % (size, _UNIX_PATH_MAX))
    return path


def _mode(text: str) -> int:
    # Octal permission bits, as chmod takes them: 660, 0660, 0600, 0777.
    for c in text:
        if c < "0" or c > "7":
            raise ConfigError("socket_mode: expected an octal mode such as 0660, got '%s'" % text)
    mode = int(text, 8)
    if mode > 0o777:
        raise ConfigError("socket_mode: %s is out of range (0000..0777)" % text)
    return mode


def _default_listener(config: Config, line: int) -> Listener:
    # `port` and `bind_address` describe one listener, kept first in the list (mosquitto's
    # "default listener"); on all interfaces at port 1883 unless they say otherwise.
    lst = config._default
    if lst is None:
        lst = Listener(DEFAULT_PORT, "")
        config._default = lst
        config.listeners.insert(0, lst)
    config._lines[id(lst)] = line
    return lst


def parse(text: str, filename: str = "<config>", config: "Config | None" = None,
          read: "Callable[[str], bytes] | None" = None) -> Config:
    """Apply the options in text (mosquitto.conf syntax) to config, or to a new Config; the
    files it names are read with read(path) (without one, naming a file is an error)."""
    cfg = Config() if config is None else config
    cfg._log_fresh = True
    _state["dest_fresh"] = True
    _state["per_listener_settings"] = 1 if getattr(cfg, "per_listener_settings", False) else 0
    _state["allow_anonymous"] = -1
    cfg._lines = {}
    cfg._last = None
    _parse_lines(cfg, text, filename, read)

    for lst in cfg.listeners:
        why = _tls_incomplete(lst)
        if why:
            raise ConfigError("%s:%d: listener %s: %s"
                              % (filename, cfg._lines.get(id(lst), 0), _name(lst), why))
    pair = _duplicate(cfg)
    if pair is not None:
        first = cfg._lines.get(id(pair[0]), 0)
        second = cfg._lines.get(id(pair[1]), 0)
        if first > second:
            first, second = second, first
        where = "%s:%d" % (filename, second) if second else filename
        msg = "%s: listener %s is defined twice" % (where, _name(pair[1]))
        if first:
            msg += " (first on line %d)" % first
        raise ConfigError(msg)
    cfg._lines = {}
    cfg._last = None
    if _state["per_listener_settings"] & 1:
        from broker.config_security import finish
        finish(cfg)
    if cfg.persistence is not None and not cfg.persistence.persistence:
        cfg.persistence = None  # its options without `persistence true` (as mosquitto)
    if cfg.bridges:
        from broker.config_bridge import check_bridges
        check_bridges(cfg, filename)
    # mosquitto 2: a file that defines a listener must say allow_anonymous true to allow it.
    if not cfg._anon_set:
        cfg.allow_anonymous = not cfg.listeners
    return cfg


def _parse_lines(cfg: Config, text: str, filename: str,
                 read: "Callable[[str], bytes] | None") -> None:
    reason = None
    for line, s in content_lines(text):
        try:
            _option(cfg, s.split(), line, read)
        except _Located:
            raise
        except ConfigError as e:
            reason = e.args[0]
        if reason is not None:
            raise _Located("%s:%d: %s" % (filename, line, reason))


def read_file(read: "Callable[[str], bytes] | None", path: str, text: bool = True) -> "Any":
    """The file at path, read with the port's read(path), as UTF-8 text unless text is false;
    when it cannot be read, ConfigError whose message is only the reason (callers say which
    file)."""
    reason = None
    data = b""  # type: Any
    if read is None:
        reason = "the parser was given no way to read files"
    else:
        try:
            data = read(path)
            if text:
                data = data.decode()
        except (OSError, ValueError) as e:  # ValueError: not UTF-8
            reason = getattr(e, "strerror", None) or str(e)
    if reason is not None:
        raise ConfigError(reason)
    return data


def content_lines(text: str) -> "list[tuple[int, str]]":
    """(line number, stripped line) for each line of a file's text that is neither blank nor a
    comment; a leading byte order mark is not part of the first line. For this parser, the
    password file and the ACL file."""
    if text[:1] == "\ufeff":
        text = text[1:]
    lines = []
    line = 0
    for raw in text.split("\n"):
        line += 1
        s = raw.strip()
        if s and s[0] != "#":
            lines.append((line, s))
    return lines


def load(path: str, read: "Callable[[str], bytes]") -> Config:
    """Read (with the port's read(path)) and parse a configuration file; an unreadable file is
    a ConfigError too."""
    try:
        text = read_file(read, path)
    except ConfigError as e:
        raise ConfigError("%s: cannot read: %s" % (path, e))
    return parse(text, path, None, read)


def embedded_default() -> Config:
    """The configuration used without -c: anonymous clients on 127.0.0.1:1883 only."""
    cfg = Config()
    cfg.listeners.append(Listener(DEFAULT_PORT, "127.0.0.1"))
    cfg.allow_anonymous = True
    return cfg
