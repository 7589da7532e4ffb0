"""The broker's clock and its timers: keepalive [MQTT-3.1.2-24], the time a new connection has
to send CONNECT, idle connections giving their buffers back, session expiry, $SYS intervals,
the summary of log lines held back in a flood.

A timer may run when the process is out of file descriptors or of heap (when a flood summary
is due), so it loads no module on the way, except session expiry at the first second.

tick(broker, now_ms) is the one entry; the port calls it at least every few hundred ms.
"""
from broker.bytesops import const
from broker.conn import CONNECTED, NO_OUTPUT
from broker.lifecycle import close

TYPE_CHECKING = False
if TYPE_CHECKING:
    from broker.engine import Broker

TICKS_MASK = const(0x3FFFFFFF)  # ms clocks wrap here so they stay small ints on a board
_HALF = const(0x20000000)
_CHECK_MS = const(500)
_LIMIT_INTERVAL_MS = const(10000)
_PROTOCOL_LEVEL_5 = const(5)
_RC_KEEP_ALIVE_TIMEOUT = const(0x8D)

# Indexes of Broker.totals, where the traffic counters are added up at each check.
_T_PACKETS_RECEIVED = const(0)
_T_PACKETS_SENT = const(1)
_T_BYTES_RECEIVED = const(2)
_T_BYTES_SENT = const(3)
_T_MESSAGES_RECEIVED = const(4)
_T_MESSAGES_SENT = const(5)
_T_MESSAGES_DROPPED = const(6)
T_CONNECTIONS = const(7)


def ticks_diff(a: int, b: int) -> int:
    return ((a - b + _HALF) & TICKS_MASK) - _HALF


def keepalive_ms(keepalive: int) -> int:
    """How long a client with the CONNECT's keepalive (seconds) may stay silent: one and a
    half times it [MQTT-3.1.2-24]; 0, never."""
    return keepalive * 1500


def tick(b: "Broker", now: int) -> None:
    """Advance the clock (ms, wrapping at TICKS_MASK); every half second, run the timers."""
    now &= TICKS_MASK
    b.now = now
    elapsed = ticks_diff(now, b.last_check)
    if elapsed < _CHECK_MS:
        return
    b.last_check = now
    _fold_counters(b)
    _log_summaries(b)
    ms = b.ms_left + elapsed
    b.ms_left = ms % 1000
    if ms >= 1000:
        b.seconds += ms // 1000
        if b.config.persistent_client_expiration or b.v5 is not None:
            from broker.expiry import expire  # only with persistent_client_expiration or v5
            expire(b)
    if b.sys is not None:
        b.sys.tick(elapsed)
    connect_ms = b.config.connect_timeout * 1000
    for conn in b.conns[:]:
        if conn.state == CONNECTED:
            if conn.keepalive_ms and ticks_diff(now, conn.last_rx) > conn.keepalive_ms:
                if conn.level == _PROTOCOL_LEVEL_5:
                    b.v5.refuse(b, conn, _RC_KEEP_ALIVE_TIMEOUT)
                close(b, conn, "Client %s has exceeded timeout, disconnecting."
                      % conn.client_id, True)
            elif not conn.busy:
                # Nothing written since the last check: an idle client keeps no buffers,
                # while a busy one keeps them and routes without allocating.
                if conn.olen == 0:
                    conn.out = NO_OUTPUT
                r = conn.reader
                # (a Reader holding a buffer has gathered into it, which set its have and
                # need: reset() then adds no attribute to an instance that had none)
                if r.have == 0 and len(r.pending):
                    r.reset()
            conn.busy = False
        elif ticks_diff(now, conn.opened) > connect_ms:
            close(b, conn, "Client %s sent no CONNECT in time, disconnecting." % conn.peer,
                  False)


def _log_summaries(b: "Broker") -> None:
    """At the end of an interval, one line per condition whose lines
    broker.lifecycle.log_limited() held back."""
    held = b.limited
    if held is None or ticks_diff(b.now, b.limited_since) < _LIMIT_INTERVAL_MS:
        return
    seconds = ticks_diff(b.now, b.limited_since) // 1000
    b.limited = None
    for i in range(0, len(held), 3):
        if held[i] > 1:
            b.log(held[i + 2], "%s (%d more like this in the last %d s)"
                  % (held[i + 1], held[i] - 1, seconds))


def _fold_counters(b: "Broker") -> None:
    """The traffic counted since the last check (small ints on the hot path, even on a
    32-bit board) added to the totals."""
    t = b.totals
    t[_T_PACKETS_RECEIVED] += b.packets_received
    t[_T_PACKETS_SENT] += b.packets_sent
    t[_T_BYTES_RECEIVED] += b.bytes_received
    t[_T_BYTES_SENT] += b.bytes_sent
    t[_T_MESSAGES_RECEIVED] += b.messages_received
    t[_T_MESSAGES_SENT] += b.messages_sent
    t[_T_MESSAGES_DROPPED] += b.messages_dropped
    t[T_CONNECTIONS] += b.connections_total
    b.packets_received = b.packets_sent = b.bytes_received = b.bytes_sent = 0
    b.messages_received = b.messages_sent = b.messages_dropped = 0
    b.connections_total = 0
