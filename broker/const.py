"""Names and numbers from the MQTT 3.1.1 and 5.0 specifications (sections 2.2.1, 2.4, 3.2.2.3,
3.9.3 of 3.1.1; 2.4 and 3.8.3.1 of 5.0)."""

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
AUTH = const(15)  # MQTT 5.0 only

PACKET_NAMES = (
    "RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL",
    "PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ",
    "PINGRESP", "DISCONNECT", "AUTH",
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
PROTOCOL_LEVEL_5 = const(5)

# A subscription's options as the broker stores them where a 3.1.1 subscription stores its
# QoS: the QoS, then MQTT 5's No Local and Retain As Published bits (5.0 3.8.3.1), then its
# Subscription Identifier. Routing merges the options of a session's matching subscriptions
# (broker.subscriptions.merge_options): OPTION_SEVERAL_IDS says that two of them had different
# Subscription Identifiers, which the PUBLISH must all carry [MQTT-3.3.4-4].
OPTION_QOS = const(0x03)
OPTION_NO_LOCAL = const(0x04)
OPTION_RETAIN_AS_PUBLISHED = const(0x08)
OPTION_SEVERAL_IDS = const(0x10)
OPTION_ID_SHIFT = const(5)
# A delivery's flags (broker.session: kept with a queued or in-flight message): the QoS,
# RETAIN, then FLAG_SEVERAL_IDS as OPTION_SEVERAL_IDS, then the Subscription Identifier.
FLAG_SEVERAL_IDS = const(0x08)
FLAG_ID_SHIFT = const(4)

# MQTT 5.0 Reason Codes (2.4) the broker sends.
RC_SUCCESS = const(0x00)
RC_DISCONNECT_WITH_WILL = const(0x04)
RC_NO_MATCHING_SUBSCRIBERS = const(0x10)
RC_NO_SUBSCRIPTION_EXISTED = const(0x11)
RC_UNSPECIFIED_ERROR = const(0x80)
RC_MALFORMED_PACKET = const(0x81)
RC_PROTOCOL_ERROR = const(0x82)
RC_IMPLEMENTATION_SPECIFIC_ERROR = const(0x83)
RC_UNSUPPORTED_PROTOCOL_VERSION = const(0x84)
RC_CLIENT_IDENTIFIER_NOT_VALID = const(0x85)
RC_BAD_USER_NAME_OR_PASSWORD = const(0x86)
RC_NOT_AUTHORIZED = const(0x87)
RC_SERVER_UNAVAILABLE = const(0x88)
RC_SERVER_BUSY = const(0x89)
RC_SERVER_SHUTTING_DOWN = const(0x8B)
RC_BAD_AUTHENTICATION_METHOD = const(0x8C)
RC_KEEP_ALIVE_TIMEOUT = const(0x8D)
RC_SESSION_TAKEN_OVER = const(0x8E)
RC_TOPIC_FILTER_INVALID = const(0x8F)
RC_TOPIC_NAME_INVALID = const(0x90)
RC_PACKET_IDENTIFIER_NOT_FOUND = const(0x92)
RC_RECEIVE_MAXIMUM_EXCEEDED = const(0x93)
RC_TOPIC_ALIAS_INVALID = const(0x94)
RC_PACKET_TOO_LARGE = const(0x95)
RC_QUOTA_EXCEEDED = const(0x97)
RC_PAYLOAD_FORMAT_INVALID = const(0x99)
RC_RETAIN_NOT_SUPPORTED = const(0x9A)
RC_QOS_NOT_SUPPORTED = const(0x9B)
RC_SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = const(0x9E)
RC_SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED = const(0xA1)
RC_WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED = const(0xA2)

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
