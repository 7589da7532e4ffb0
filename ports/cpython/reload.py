"""SIGHUP (CPython): read the configuration file again and take what mosquitto reloads, without
dropping a client. A file that no longer parses (the configuration, its password_file or
acl_file) is logged and the running configuration kept whole. Loaded by the first SIGHUP."""
from broker.config import ConfigError, load
from broker.config_security import own
from broker.const import LOG_ERR, LOG_NOTICE
from ports.readfile import read_file

TYPE_CHECKING = False
if TYPE_CHECKING:
    from broker.settings import Config
    from ports.cpython.server import Server

# mosquitto.conf(5)'s "Reloaded on reload signal" that this broker reads as it serves; the
# others it marks so (memory_limit, max_queued_bytes, max_packet_size, sys_interval,
# max_inflight_messages) size tables at start-up here and need a restart.
RELOADED = (
    "allow_anonymous", "allow_zero_length_clientid", "auto_id_prefix", "connection_messages",
    "log_dest", "log_facility", "log_file", "log_timestamp", "log_timestamp_format",
    "log_types", "max_keepalive", "max_queued_messages", "message_size_limit", "passwords",
    "password_dummy", "acl", "persistent_client_expiration", "queue_qos0_messages",
    "retain_available", "set_tcp_nodelay", "per_listener_settings",
)

# per_listener_settings true: what each listener has of its own (broker.config_security)
PER_LISTENER = ("allow_anonymous", "passwords", "password_dummy", "acl",
                "allow_zero_length_clientid", "auto_id_prefix")


def reload(server: "Server", path: str) -> None:
    b = server.broker
    try:
        new = load(path, read_file)
    except ConfigError as e:
        b.log(LOG_ERR, "Error reloading the configuration, keeping the previous one: %s" % e)
        return
    old = server.config
    for name in RELOADED:
        if name in new.__dict__:
            setattr(old, name, getattr(new, name))
        elif name in old.__dict__:
            delattr(old, name)  # back to its default
    apply = getattr(server.log, "apply", None)  # none: an embedding application's own log
    try:
        if apply is not None:
            apply(old)
    except OSError as e:
        b.log(LOG_ERR, "Error reopening the log file %s: %s" % (getattr(old, "log_file", ""), e))
    b.log_mask = old.log_types
    b.acl = old.acl
    for fd, sock in server.listeners.items():
        if isinstance(server.local[fd], int):  # a TCP listener
            server.nodelay(sock)
    _listeners(server, new)
    for s in b.sessions.values():
        conn = s.conn
        acl = old.acl
        if conn is not None and getattr(old, "per_listener_settings", False):
            acl = (conn.listener or old).acl
        if acl is None:
            s.acl = None
        elif conn is not None and s.local is None:
            s.acl = acl.rules_for(s.client_id, conn.username)
    b.log(LOG_NOTICE, "Reloaded the configuration from %s." % path)


def _listeners(server: "Server", new: "Config") -> None:
    """Each open listener takes the per-listener options the new file gives the listener of
    the same address (none: it is not in the file any more)."""
    if not getattr(new, "per_listener_settings", False):
        return
    for lst in server.bound.values():
        same = None
        for n in new.listeners:
            if (n.path, n.host or "0.0.0.0", n.port) == (lst.path, lst.host or "0.0.0.0",
                                                          lst.port):
                same = n
        for name in PER_LISTENER:
            if same is not None and hasattr(same, name):
                setattr(lst, name, getattr(same, name))
            elif hasattr(lst, name):
                delattr(lst, name)
        own(lst, False)
