"""acl_file: topic access control in mosquitto's syntax (see docs/configuration.md), the checks.

Imported (by broker.acl_file, the file's parser) only when the configuration has an acl_file; the
engine then holds the parsed file as config.acl (None without one, and every ACL check is behind
that None test).

At CONNECT, rules_for() compiles the rules that apply to one client (its user's section, or the
anonymous section when it gave no username, plus every `pattern` with %c and %u substituted) into
a list of (access, Filter) kept on its session. can() checks a topic name against that list with
broker.topics.filter_matches: granted when a rule with that access matches and no `deny` rule does.
Everything not granted is denied. Like mosquitto, '#' and '+' at the start of a rule do not match
topics beginning with '$' [MQTT-4.7.2-1]: $SYS topics need a rule that names $SYS.

SUBSCRIBE (mosquitto 2.0 grants it when a read rule matches the filter, then checks each message
it delivers): a filter is granted when it can overlap some read rule, i.e. some topic name is
matched by both; every message delivered on it is then checked against the read rules, so a '#'
subscriber receives only what it may read.
"""
from broker.topics import Filter, filter_matches, valid_topic_filter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Tuple, Union
    Buffer = Union[bytes, bytearray]
    Rules = List[Tuple[int, Filter]]
    from broker.engine import Broker
    from broker.session import Session

LOG_NOTICE = 0x04
READ = 1
WRITE = 2
DENY = 4  # a `deny` rule: checked before the rules that grant


class Acl:
    """A parsed acl_file: the anonymous section, each user's section, the patterns, each a list
    of (access, filter bytes)."""

    def __init__(self) -> None:
        self.anonymous = []  # type: List[Tuple[int, bytes]]
        self.users = {}  # type: Dict[str, List[Tuple[int, bytes]]]
        self.patterns = []  # type: List[Tuple[int, bytes]]

    def rules_for(self, client_id: str, username: "Optional[str]") -> "Rules":
        """The compiled rules of one client."""
        out = []  # type: Rules
        if username is None:
            own = self.anonymous
        else:
            own = self.users.get(username, [])
        for access, filt in own:
            out.append((access, Filter(filt)))
        cid = client_id.encode()
        user = None if username is None else username.encode()
        for access, filt in self.patterns:
            if filt.find(b"%u") >= 0:
                if user is None or _wild(user):
                    continue  # mosquitto: no %u pattern for anonymous clients
                filt = filt.replace(b"%u", user)
            if filt.find(b"%c") >= 0:
                if _wild(cid):
                    continue
                filt = filt.replace(b"%c", cid)
            if valid_topic_filter(filt):
                out.append((access, Filter(filt)))
        return out

    def readable(self, rules: "Rules", buf: "Buffer", start: int, end: int) -> bool:
        return can(rules, READ, buf, start, end)

    def writable(self, rules: "Rules", buf: "Buffer", start: int, end: int) -> bool:
        return can(rules, WRITE, buf, start, end)


def _wild(value: bytes) -> bool:
    """A client id or username that would widen a pattern: it is not substituted."""
    return value.find(b"+") >= 0 or value.find(b"#") >= 0


def can(rules: "Rules", access: int, buf: "Buffer", start: int, end: int) -> bool:
    """May a client with these rules read (READ) or write (WRITE) the topic buf[start:end]?"""
    granted = False
    for a, f in rules:
        if a & DENY:
            if filter_matches(f, buf, start, end):
                return False
        elif not granted and a & access and filter_matches(f, buf, start, end):
            granted = True
    return granted


def can_subscribe(rules: "Rules", filt: bytes) -> bool:
    """Is a SUBSCRIBE to filt granted: does it overlap some read rule?"""
    mine = filt.split(b"/")
    for a, f in rules:
        if a & READ and not a & DENY and overlap(f.filt.split(b"/"), mine):
            return True
    return False


def overlap(a: "List[bytes]", b: "List[bytes]") -> bool:
    """Is some topic name matched by both filters (given as their levels)?"""
    if a and b and a[0][:1] == b"$" and b[0] in (b"+", b"#"):
        return False  # [MQTT-4.7.2-1]
    if a and b and b[0][:1] == b"$" and a[0] in (b"+", b"#"):
        return False
    i = 0
    while i < len(a) and i < len(b):
        x = a[i]
        y = b[i]
        if x == b"#" or y == b"#":
            return True
        if x != b"+" and y != b"+" and x != y:
            return False
        i += 1
    rest = a[i:] if i < len(a) else b[i:]
    return not rest or rest == [b"#"]


def drop_unreadable(b: "Broker", s: "Session") -> None:
    """A session continued by a connection of another user keeps its subscriptions (every
    message routed to it is checked against the new user's rules), but what was queued or in
    flight for the previous user and that this one may not read is dropped, as in mosquitto 2.0
    (its connection_check_acl)."""
    rules = s.acl
    dropped = 0
    i = 0
    while i < len(s.queue):
        m = s.queue[i]
        if can(rules, READ, m.data, 0, m.tlen):
            i += 1
        else:
            s.unqueue(i)
            dropped += 1
    for i in range(len(s.slot_state)):
        sent = s.slot_msg[i]
        if sent is not None and not can(rules, READ, sent.data, 0, sent.tlen):
            s.release_slot(i)
            dropped += 1
    if dropped:
        b.messages_dropped += dropped
        b.log(LOG_NOTICE, "Client %s: %d queued or in-flight messages dropped: not readable by"
              " its new user (acl_file)." % (s.client_id, dropped))
