"""The command line shared by both ports: `-m broker [-p PORT] [-c FILE] [-v]`."""
from broker import VERSION
from broker.config import Config, embedded_default, load
from broker.const import LOG_ALL

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List, Optional

USAGE = """usage: python -m broker [-p PORT] [-c FILE] [-v]
  -p PORT   listen on 127.0.0.1:PORT (default 1883); with -c, replaces the first listener's port
  -c FILE   read the configuration from FILE (mosquitto.conf syntax)
  -v        verbose: log every packet (log_type all)
"""


class UsageError(Exception):
    pass


def parse_args(argv: "List[str]") -> Config:
    """Configuration from the command line; raises UsageError or ConfigError."""
    port = None  # type: Optional[int]
    path = None  # type: Optional[str]
    verbose = False
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("-h", "--help"):
            raise UsageError("")
        if a == "-v" or a == "--verbose":
            verbose = True
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
    config = load(path) if path is not None else embedded_default()
    config.default_listener(port)
    if verbose:
        config.log_types = LOG_ALL
    return config


def banner() -> str:
    return "broker %s starting" % VERSION
