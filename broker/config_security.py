"""`per_listener_settings true`: each listener's own allow_anonymous, password_file, acl_file,
allow_zero_length_clientid and auto_id_prefix, as mosquitto 2.0 scopes them.

Imported by broker.config only for a file that says `per_listener_settings true`, and dropped
with it after start-up (broker.cli.unload_parser). The options are kept on the Listener under
the names the Config uses for them, so that the engine reads a connection's listener
(conn.listener, set by the port) where it would read the Config. Errors are ConfigErrors whose
message is the reason only; broker.config adds FILE:LINE.

As mosquitto: a security option before the first `listener` line belongs to the default
listener (`port`, `bind_address`), and all but allow_anonymous make that listener exist (on
every interface at port 1883) when no `port` line does; a listener that does not say
allow_anonymous refuses anonymous clients.
"""
from broker.config import Config, ConfigError, Listener, _default_listener, _state, option_file

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable


def listener_option(config: Config, words: "list[str]", line: int,
                    read: "Callable[[str], bytes] | None") -> None:
    name = words[0]
    value = words[1]
    lst = config._last
    if name == "auto_id_prefix":
        value = " ".join(words[1:])
    elif len(words) > 2:
        raise ConfigError("'%s' takes one value, got %d" % (name, len(words) - 1))
    if name in ("allow_anonymous", "allow_zero_length_clientid"):
        if value not in ("true", "false"):
            raise ConfigError("%s: expected true or false, got '%s'" % (name, value))
        if lst is None and name == "allow_anonymous" and config._default is None:
            # kept for a `port` line that may follow
            _state["allow_anonymous"] = 1 if value == "true" else 0
            return
    if lst is None:
        lst = _default_listener(config, line)
    if name == "password_file":
        from broker.passfile import dummy_entry, parse_passwords
        lst.passwords = parse_passwords(option_file(name, value, read, True), value)
        lst.password_dummy = dummy_entry(lst.passwords)
    elif name == "acl_file":
        from broker import acl_file
        lst.acl = acl_file.parse(option_file(name, value, read, True), value)
    elif name == "auto_id_prefix":
        lst.auto_id_prefix = value
    else:
        setattr(lst, name, value == "true")


def finish(config: Config) -> None:
    """At the end of the file: every listener gets the options it did not give (mosquitto's
    defaults), and config.acl the first listener's ACL, which routing only tests for None (the
    rules a session is checked against are its own, from its listener's file)."""
    anonymous = _state["allow_anonymous"]
    if config._default is not None and anonymous >= 0:
        if not hasattr(config._default, "allow_anonymous"):
            config._default.allow_anonymous = anonymous == 1
    config.acl = None
    for lst in config.listeners:
        own(lst, False)
        if config.acl is None:
            config.acl = lst.acl


def own(lst: Listener, anonymous: bool) -> None:
    """Give lst the per-listener options it has not set: no password_file, no acl_file, and
    anonymous clients as `anonymous` says."""
    if not hasattr(lst, "allow_anonymous"):
        lst.allow_anonymous = anonymous
    if not hasattr(lst, "passwords"):
        lst.passwords = None
        lst.password_dummy = None
    if not hasattr(lst, "acl"):
        lst.acl = None
