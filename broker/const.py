"""Names and numbers from the MQTT 3.1.1 specification (section 2.2.1, 3.2.2.3, 3.9.3)."""

from broker.bytesops import const

# Control packet types: the high nibble of the first byte.
CONNECT = const(1)
CONNACK = const(2)
PUBLISH = const(3)
PUBACK = const(4)
PUBREC = const(5)
PUBREL = const(6)
PUBCOMP = const(7)
SUBSCRIBE = const(8)
SUBACK = const(9)
UNSUBSCRIBE = const(10)
UNSUBACK = const(11)
PINGREQ = const(12)
PINGRESP = const(13)
DISCONNECT = const(14)

PACKET_NAMES = (
    "RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL",
    "PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ",
    "PINGRESP", "DISCONNECT", "RESERVED",
)

# CONNACK return codes (3.2.2.3).
CONNACK_ACCEPTED = const(0)
CONNACK_UNACCEPTABLE_PROTOCOL_VERSION = const(1)
CONNACK_IDENTIFIER_REJECTED = const(2)
CONNACK_SERVER_UNAVAILABLE = const(3)
CONNACK_BAD_USERNAME_OR_PASSWORD = const(4)
CONNACK_NOT_AUTHORIZED = const(5)

# SUBACK return code for a refused filter (3.9.3).
SUBACK_FAILURE = const(0x80)

# CONNECT flags (3.1.2.3).
CONNECT_FLAG_RESERVED = const(0x01)
CONNECT_FLAG_CLEAN_SESSION = const(0x02)
CONNECT_FLAG_WILL = const(0x04)
CONNECT_FLAG_WILL_RETAIN = const(0x20)
CONNECT_FLAG_PASSWORD = const(0x40)
CONNECT_FLAG_USERNAME = const(0x80)

# Protocol levels (3.1.2.2): 3 is MQTT 3.1 ("MQIsdp"), 4 is MQTT 3.1.1 ("MQTT").
PROTOCOL_LEVEL_31 = const(3)
PROTOCOL_LEVEL_311 = const(4)

# The largest value the Remaining Length field can encode (2.2.3).
MAX_REMAINING_LENGTH = const(268435455)

# Log types, as mosquitto's log_type names them; a mask selects which are printed.
LOG_ERR = const(0x01)
LOG_WARNING = const(0x02)
LOG_NOTICE = const(0x04)
LOG_INFO = const(0x08)
LOG_SUBSCRIBE = const(0x10)
LOG_UNSUBSCRIBE = const(0x20)
LOG_DEBUG = const(0x40)
LOG_ALL = const(0x7F)
LOG_DEFAULT = const(0x0F)
