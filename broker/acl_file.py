"""The acl_file's syntax (mosquitto's, see docs/configuration.md): its text -> a broker.acl.Acl.

Start-up code, like broker.config, which imports it only when the configuration names an
acl_file; a board drops it with the other parsers (broker.cli.unload_parser), keeping only the
checks of broker.acl. Errors are one line, "FILE:LINE: reason", as in a configuration file.
"""
from broker.acl import DENY, READ, WRITE, Acl
from broker.config import ConfigError, _Located, content_lines
from broker.topics import valid_topic_filter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List, Tuple

_ACCESS = {"read": READ, "write": WRITE, "readwrite": READ | WRITE, "deny": DENY}


def parse(text: str, filename: str = "<acl>") -> Acl:
    """An acl_file's text -> Acl; the first malformed line raises "FILE:LINE: reason"."""
    acl = Acl()
    section = acl.anonymous
    reason = None
    for line, s in content_lines(text):
        try:
            section = _line(acl, section, s)
        except ConfigError as e:
            reason = e.args[0]
        if reason is not None:
            raise _Located("%s:%d: %s" % (filename, line, reason))
    return acl


def _line(acl: Acl, section: "List[Tuple[int, bytes]]", s: str
          ) -> "List[Tuple[int, bytes]]":
    words = s.split(None, 1)
    kind = words[0]
    rest = words[1].strip() if len(words) > 1 else ""
    if kind == "user":
        if not rest:
            raise ConfigError("'user' needs a username")
        got = acl.users.get(rest)
        if got is None:
            got = []
            acl.users[rest] = got
        return got
    if kind != "topic" and kind != "pattern":
        raise ConfigError("unknown keyword '%s' (expected topic, pattern or user)" % kind)
    access = READ | WRITE
    parts = rest.split(None, 1)
    if parts and parts[0] in _ACCESS:
        if len(parts) == 1:
            raise ConfigError("'%s %s' needs a topic" % (kind, parts[0]))
        access = _ACCESS[parts[0]]
        rest = parts[1].strip()
    if not rest:
        raise ConfigError("'%s' needs a topic" % kind)
    if kind == "pattern" and access & DENY:
        raise ConfigError("'pattern deny' is not supported")
    filt = rest.encode()
    if not valid_topic_filter(filt):
        raise ConfigError("invalid topic filter '%s'" % rest)
    if kind == "pattern":
        acl.patterns.append((access, filt))
    else:
        section.append((access, filt))
    return section
