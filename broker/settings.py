"""The broker's options as plain data: what the engine keeps after start-up.

Deliberately tiny, with no methods beyond __init__ (and Listener.__repr__): a method keeps its
module's globals alive, so the parser lives in broker.config, which a board can drop from
sys.modules once the configuration is read (see broker.cli.unload_parser).
"""

from broker.bytesops import const

_LOG_DEFAULT = const(0x0F)
_MAX_REMAINING_LENGTH = const(268435455)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any
    from broker.acl import Acl
    from broker.bridge_settings import BridgeSettings

DEFAULT_PORT = 1883
DEFAULT_MAX_CONNECTIONS = 10000
NO_PACKET_LIMIT = _MAX_REMAINING_LENGTH + 5  # 268435460: the largest packet MQTT can frame


class Listener:
    """A TCP listener (path ""): host "" (or "0.0.0.0") means all interfaces. A unix socket
    listener (`listener 0 PATH`): port 0, host "", path the socket file's path. socket_mode is
    the socket file's mode (an int such as 0o660), or -1 to leave what the umask gives.
    websockets: MQTT over WebSockets (`protocol websockets`), with http_dir's files served over
    HTTP when it is set."""

    websockets = False
    http_dir = ""

    def __init__(self, port: int, host: str = "", path: str = "") -> None:
        self.port = port
        self.host = host
        self.path = path
        self.socket_mode = -1
        # TLS (mosquitto's per-listener options): the listener speaks TLS when certfile is set.
        self.certfile = ""
        self.keyfile = ""
        self.cafile = ""
        self.require_certificate = False

    if TYPE_CHECKING:
        v6only: bool  # socket_domain ipv6 on all interfaces: "::" without IPv4 clients
        # the client certificate's name is the username (CPython: ports/cpython/tls.py)
        use_identity_as_username: bool  # its CN
        use_subject_as_username: bool  # its whole subject, as RFC 2253 writes it
        # per_listener_settings true (broker.config_security): the Config's options of these
        # names, this listener's own
        allow_anonymous: bool
        passwords: "dict[str, tuple[int, bytes, bytes]] | None"
        password_dummy: "tuple[int, bytes, bytes] | None"
        acl: "Acl | None"
        allow_zero_length_clientid: bool
        auto_id_prefix: str

    def __repr__(self) -> str:
        if self.path:
            return "Listener(%d, %r, %r)" % (self.port, self.host, self.path)
        return "Listener(%d, %r)" % (self.port, self.host)


class Config:
    """Limits and listeners. Attribute names are the option names.

    The options a board rarely sets (the process's and the log's, mosquitto's client id
    options) are set on the instance only when the configuration gives them, and read with
    getattr(config, name, default): every attribute here is heap on a board."""

    if TYPE_CHECKING:
        log_file: str  # log_dest file PATH
        log_timestamp: bool
        log_timestamp_format: str
        log_facility: int
        pid_file: str
        user: str
        set_tcp_nodelay: bool
        allow_zero_length_clientid: bool
        auto_id_prefix: str
        daemon: bool  # -d
        config_file: str  # the -c FILE it was read from (reloaded on SIGHUP)
        per_listener_settings: bool

    # `persistence true` and its options (a broker.config.Persistence); None, the default:
    # nothing is saved. On the class: a board without persistence does not store it.
    persistence = None  # type: Any
    # Read on every PUBLISH and every connection's start and end: class defaults rather than
    # getattr's, one attribute lookup each (the instance stores them only when given).
    message_size_limit = 0
    connection_messages = True

    def __init__(self) -> None:
        self.listeners = []  # type: list[Listener]
        self.allow_anonymous = True
        self.max_connections = DEFAULT_MAX_CONNECTIONS
        self.max_inflight_messages = 20
        self.max_queued_messages = 1000
        self.queue_qos0_messages = False
        self.max_packet_size = NO_PACKET_LIMIT
        self.max_keepalive = 65535
        # Topic Aliases an MQTT 5 client may set (its CONNACK's Topic Alias Maximum)
        self.max_topic_alias = 10
        # the highest QoS a client may publish at and is granted (mosquitto's max_qos)
        self.max_qos = 2
        self.retain_available = True
        self.log_types = _LOG_DEFAULT
        self.log_dest = "stderr"  # the destinations, separated by spaces; "": none
        self.max_subscriptions = 100000
        self.max_retained_messages = 10000
        self.max_sessions = 10000
        self.max_topic_length = 65535
        self.sys_interval = 10  # seconds between $SYS updates; 0: no $SYS publishing
        self.connect_timeout = 10  # seconds a new socket has to send CONNECT (our own option)
        # offline persistent sessions not seen for this many seconds are removed; 0: never
        self.persistent_client_expiration = 0
        # one client's share of the subscription and retained tables; 0: half of each
        self.max_subscriptions_per_client = 0
        self.max_retained_per_client = 0
        # bytes of kept messages (all) and of one client's queue; 0: no limit (on MicroPython
        # the port derives both from the heap when they are 0)
        self.memory_limit = 0
        self.max_queued_bytes = 0
        # password_file, as read at start-up: username -> (iterations, salt, hash) (broker.auth);
        # None when there is no password_file.
        self.passwords = None  # type: dict[str, tuple[int, bytes, bytes]] | None
        # What an unknown user's password is checked against, so that the check takes as long
        # as a known user's (broker.passfile.dummy_entry); set with passwords.
        self.password_dummy = None  # type: tuple[int, bytes, bytes] | None
        # acl_file, as read at start-up (a broker.acl.Acl); None when there is no acl_file.
        self.acl = None  # type: Acl | None
        # One per `connection` section (broker.bridge_settings); empty: no bridge code loaded.
        self.bridges = []  # type: list[BridgeSettings]
        # Parser state (broker.config), kept here so a parse can resume on an existing Config.
        self._anon_set = False  # allow_anonymous given explicitly
        self._default = None  # type: Listener | None  # set by `port` / `bind_address`
        self._last = None  # type: Listener | None  # the latest `listener` line (socket_mode)
        self._log_fresh = True  # the next log_type line replaces log_types
        self._lines = {}  # type: dict[int, int]  # id(listener) -> line, while parsing
