"""A bridge's options as plain data (what broker.config_bridge fills in, broker.bridge uses).

No methods beyond __init__, like broker.settings, so that the parser can be unloaded on a board
while these stay.
"""

# Topic directions, as bits: both is in | out.
OUT = 1
IN = 2
BOTH = 3


class TopicRule:
    """One `topic` line: the local and remote filters are the pattern behind each prefix."""

    def __init__(self, pattern: bytes, direction: int, qos: int, local_prefix: bytes,
                 remote_prefix: bytes) -> None:
        self.direction = direction
        self.qos = qos
        self.local_prefix = local_prefix
        self.remote_prefix = remote_prefix
        self.local_filter = local_prefix + pattern
        self.remote_filter = remote_prefix + pattern


class BridgeSettings:
    """One `connection` section. None means "not given": the bridge derives the default."""

    def __init__(self, name: str, line: int) -> None:
        self.name = name
        self.line = line  # of the `connection` line, for errors found after the section
        self.addresses = []  # type: list[tuple[str, int]]
        self.topics = []  # type: list[TopicRule]
        self.remote_clientid = None  # type: str | None
        self.local_clientid = None  # type: str | None
        self.remote_username = None  # type: str | None
        self.remote_password = None  # type: str | None
        self.cleansession = False
        self.keepalive_interval = 60
        self.restart_base = 5  # seconds; restart_cap 0: a constant restart_base
        self.restart_cap = 30
        self.notifications = True
        self.notifications_local_only = False
        self.notification_topic = None  # type: str | None
        self.try_private = True
        self.protocol_level = 4  # 5 with mqttv50: the bridge speaks MQTT 5.0 (broker.bridge5)
        self.outgoing_retain = True
        self.max_queued_messages = 0  # 0: the broker's max_queued_messages
        # TLS to the remote broker, on when cafile is set (mosquitto's bridge_cafile etc.)
        self.cafile = None  # type: str | None
        self.certfile = None  # type: str | None
        self.keyfile = None  # type: str | None
        self.insecure = False  # no host name check
