"""Sessions that end without their client: persistent_client_expiration and MQTT 5's Session
Expiry Interval, and making room in a full session table. Imported only when the configuration
sets an expiration, an MQTT 5 client came, or the session table is full when a new client
connects."""
from broker.lifecycle import discard_session

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional
    from broker.engine import Broker
    from broker.session import Session

_LOG_NOTICE = 0x04


def expire(b: "Broker") -> None:
    """Offline sessions end once their MQTT 5 Session Expiry Interval has run out
    [MQTT-3.1.2-23], or, for the others, once they were not seen for
    persistent_client_expiration seconds (0: never)."""
    config_limit = b.config.persistent_client_expiration
    now = b.seconds
    if b.v5 is not None:
        b.v5.due_wills(b)
    expired = [s for s in b.sessions.values()
               if s.conn is None and s.local is None and _ended(s, config_limit, now)]
    for s in expired:
        discard_session(b, s)
        b.sessions_expired += 1
        b.log(_LOG_NOTICE, "Expiring client %s: not seen for %d s (%s)."
              % (s.client_id, now - s.seen, "persistent_client_expiration" if s.expiry < 0
                 else "its Session Expiry Interval"))


def _ended(s: "Session", config_limit: int, now: int) -> bool:
    limit = config_limit if s.expiry < 0 else s.expiry
    return limit > 0 and now - s.seen >= limit


def evict(b: "Broker", cid: str) -> bool:
    """Make room in a full session table for the new client cid: a new client is never locked
    out by sessions whose clients went away; the one seen least recently goes (with what was
    queued for it). False when every session is connected."""
    victim = None  # type: Optional[Session]
    for s in b.sessions.values():
        if s.conn is None and s.local is None and (victim is None or s.seen < victim.seen):
            victim = s
    if victim is None:
        return False
    discard_session(b, victim)
    b.sessions_evicted += 1
    b.log(_LOG_NOTICE, "Client %s: discarding the session of offline client %s (not seen for %d"
          " s) to make room: max_sessions (%d) reached."
          % (cid, victim.client_id, b.seconds - victim.seen, b.config.max_sessions))
    return True
