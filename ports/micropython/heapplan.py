"""The heap plan, checked once at start-up on MicroPython: does the configuration fit the heap,
and how much of it may kept messages take (memory_limit, max_queued_bytes, when the
configuration sets neither). Imported by ports.micropython.server.serve(), and it unloads
itself once it has run: a board keeps none of this.

The costs are measured by `make mem` (per idle client, per subscription, per retained message,
at a board's word size and on 64-bit), in machine words, rounded up: a 32-bit board needs about
half the bytes a 64-bit build does for the same objects.
"""
import gc
import sys

from broker.session import MESSAGE_OVERHEAD
from broker.settings import DEFAULT_MAX_CONNECTIONS, Config

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Tuple
    from broker.engine import Broker

_WORD = 8 if sys.maxsize > 0x7FFFFFFF else 4
_CONNECTION_WORDS = 256  # a connection, its socket, and the buffers it works with
_SESSION_WORDS = 32
_SUBSCRIPTION_WORDS = 64
_RETAINED_WORDS = 40  # besides its bytes, which the ledger counts
_MESSAGE_MIN = 1024  # the room for messages may not be less than one message of this size
_HEAP_FREE_SHARE = 16  # ports.micropython.server's: a sixteenth of the heap stays free
_PLANNED_CONNECTIONS = 8  # without max_connections in the configuration
_LOG_WARNING = 0x02


def plan(broker: "Broker", config: "Config", heap_free: "Callable[[], int]",
         log: "Callable[[int, str], None]") -> str:
    """Check the configuration against the heap once everything is loaded and bound, and
    size the budgets of kept messages from it; the reason it cannot work, or "". A warning is
    logged when its tables, once full, would not fit beside its connections."""
    import ports.micropython as package
    del sys.modules[__name__]  # start-up only: the caller's reference is the last one
    delattr(package, "heapplan")
    error, warning = _plan(broker, config, heap_free)
    if warning:
        log(_LOG_WARNING, "Warning: %s." % warning)
    return error


def _plan(broker: "Broker", config: "Config", heap_free: "Callable[[], int]"
          ) -> "Tuple[str, str]":
    gc.collect()
    used = gc.mem_alloc()  # type: ignore[attr-defined]
    free = heap_free()
    heap = used + free
    conn = _CONNECTION_WORDS * _WORD
    message = min(config.max_packet_size, _MESSAGE_MIN) + MESSAGE_OVERHEAD
    usable = free - heap // _HEAP_FREE_SHARE
    if usable < conn + message:
        return ("the configuration does not fit a heap of %d KB: %d KB are in use after"
                " start-up and a sixteenth stays free, which leaves no room to serve a client:"
                " give a larger heap, or configure less (the code of password_file, acl_file,"
                " TLS, bridges and $SYS is in the heap with the rest)"
                % (heap // 1024, used // 1024), "")
    conns = config.max_connections
    if conns == DEFAULT_MAX_CONNECTIONS:
        conns = _PLANNED_CONNECTIONS
    # Kept messages may take what max_connections clients leave, and at least half of it
    # when they would need more: then fewer clients are served at once (CONNACK 0x03).
    room = usable - conns * conn
    ledger = broker.ledger
    if not config.memory_limit:
        # (with the messages a journal loaded: they are in the heap already, not in `free`)
        ledger.limit = max(room, usable // 2) + ledger.bytes
    # One client's queue may take all of it by default: past max_queued_bytes a message is
    # dropped for that client after it was acknowledged, which only a limit the configuration
    # chose may do; past memory_limit it is refused before.
    if not config.max_queued_bytes:
        ledger.queue_limit = ledger.limit
    if room < message:
        return ("", "%d connections (max_connections) need about %d KB of the %d KB free after"
                " start-up in a heap of %d KB: fewer clients may be served at once"
                % (conns, conns * conn // 1024, free // 1024, heap // 1024))
    tables = (config.max_sessions * _SESSION_WORDS
              + config.max_subscriptions * _SUBSCRIPTION_WORDS
              + config.max_retained_messages * _RETAINED_WORDS) * _WORD
    defaults = Config()  # sized for CPython: not a choice this configuration made
    chosen = (config.max_sessions, config.max_subscriptions, config.max_retained_messages) != (
        defaults.max_sessions, defaults.max_subscriptions, defaults.max_retained_messages)
    if chosen and tables + message > room:
        return ("", "the tables of this configuration, once full, need about %d KB of the %d KB"
                " left for messages in a heap of %d KB: sessions, subscriptions or retained"
                " messages may be refused for memory before their limits (max_sessions,"
                " max_subscriptions, max_retained_messages)"
                % (tables // 1024, room // 1024, heap // 1024))
    return ("", "")
