"""The command line shared by both ports: `-m broker [-p PORT] [-c FILE] [-v]`.

Start-up code only, like broker.config: once the configuration is read, a board may drop both
modules with unload_parser() (the Config it got is a broker.settings object, which needs neither).
"""
import sys

from broker import VERSION
from broker.config import default_listener, embedded_default, load
from broker.const import LOG_ALL

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, List, Optional
    from broker.settings import Config

USAGE = """usage: python -m broker [-p PORT] [-c FILE] [-v]
  -p PORT   listen on 127.0.0.1:PORT (default 1883); with -c, replaces the first TCP listener's port
  -c FILE   read the configuration from FILE (mosquitto.conf syntax)
  -v        verbose: log every packet (log_type all)
  -d        run in the background once listening (CPython)
"""


class UsageError(Exception):
    pass


def parse_args(argv: "List[str]", read: "Callable[[str], bytes]") -> "Config":
    """Configuration from the command line, its files read with the port's read(path) -> bytes
    (ports/readfile.py); raises UsageError or ConfigError."""
    port = None  # type: Optional[int]
    path = None  # type: Optional[str]
    verbose = False
    daemon = False
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("-h", "--help"):
            raise UsageError("")
        if a == "-v" or a == "--verbose":
            verbose = True
        elif a == "-d" or a == "--daemon":
            daemon = True
        elif a in ("-p", "--port", "-c", "--config-file"):
            if i + 1 >= len(argv):
                raise UsageError("%s needs a value" % a)
            i += 1
            if a in ("-p", "--port"):
                try:
                    port = int(argv[i])
                except ValueError:
                    port = -1
                if not 0 < port < 65536:
                    raise UsageError("invalid port '%s'" % argv[i])
            else:
                path = argv[i]
        else:
            raise UsageError("unknown argument '%s'" % a)
        i += 1
    config = load(path, read) if path is not None else embedded_default()
    if path is not None:
        config.config_file = path  # what SIGHUP reads again
    default_listener(config, port)
    if verbose:
        config.log_types = LOG_ALL
    if daemon:
        config.daemon = True
    return config


def banner() -> str:
    return "broker %s starting" % VERSION


def unload_parser() -> None:
    """Forget the parsers (broker.config, broker.config_bridge, broker.passfile, broker.acl_file),
    this module and broker.const (the runtime modules keep their own copies of the values they
    use), so that the next gc.collect() can free them: for boards, once parse_args has returned.
    They are dropped from sys.modules and from the broker package, which keeps every imported
    submodule as an attribute. The caller must drop its own references too (names imported from
    either module, such as parse_args or ConfigError); the Config that parse_args returned stays
    valid."""
    import broker
    for name in ("config", "config_bridge", "config_security", "passfile", "acl_file", "cli",
                 "const"):
        full = "broker." + name
        if full in sys.modules:
            del sys.modules[full]
        if hasattr(broker, name):
            delattr(broker, name)
