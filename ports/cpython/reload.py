"""SIGHUP (CPython): read the configuration file again and take what mosquitto reloads, without
dropping a client. A file that no longer parses (the configuration, its password_file or
acl_file) is logged and the running configuration kept whole. Loaded by the first SIGHUP."""
from broker.config import ConfigError, load
from broker.const import LOG_ERR, LOG_NOTICE
from ports.readfile import read_file

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ports.cpython.server import Server

# mosquitto.conf(5)'s "Reloaded on reload signal" that this broker reads as it serves; the
# others it marks so (memory_limit, max_queued_bytes, max_packet_size, sys_interval,
# max_inflight_messages) size tables at start-up here and need a restart.
RELOADED = (
    "allow_anonymous", "allow_zero_length_clientid", "auto_id_prefix", "connection_messages",
    "log_dest", "log_facility", "log_file", "log_timestamp", "log_timestamp_format",
    "log_types", "max_keepalive", "max_queued_messages", "message_size_limit", "passwords",
    "password_dummy", "acl", "persistent_client_expiration", "queue_qos0_messages",
    "retain_available", "set_tcp_nodelay",
)


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
    try:
        server.log.apply(old)  # type: ignore[attr-defined]
    except OSError as e:
        b.log(LOG_ERR, "Error reopening the log file %s: %s" % (getattr(old, "log_file", ""), e))
    b.log_mask = old.log_types
    b.acl = old.acl
    for s in b.sessions.values():
        conn = s.conn
        if old.acl is None:
            s.acl = None
        elif conn is not None and s.local is None:
            s.acl = old.acl.rules_for(s.client_id, conn.username)
    b.log(LOG_NOTICE, "Reloaded the configuration from %s." % path)
