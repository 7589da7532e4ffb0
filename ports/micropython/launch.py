"""`micropython -m broker` and a board's main.py: read the configuration, then load the broker.

The order is the point of this module: the parser (broker.cli, broker.config) is imported, used
and dropped before the engine is imported, so the two never share a small heap. Loading the
parser on top of the engine raised the heap needed to start from .mpy files by about 12 KB.
"""
import gc
import sys

# Collect every this many bytes while modules load. MicroPython otherwise collects only when the
# heap is full, so compiling spreads the objects each module keeps all over the heap, between
# its parse trees; once those are freed, the heap is left in pieces too small for connection
# buffers (a 256K heap failed 4 KB allocations with 100 KB free).
_COMPILE_GC_BYTES = 4096

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, List, Optional, Tuple
    from broker.settings import Config


def _configure(argv: "List[str]") -> "Optional[Tuple[Config, str]]":
    """The configuration and the start-up banner, or None after printing why there is none.
    The parser is unloaded before returning: on a board its code would otherwise hold about
    10 KB of heap for the broker's whole life."""
    from broker import cli
    from broker.config import ConfigError

    def read_file(path: str) -> bytes:
        # The parser's reader (ports/readfile.py's, which is not imported: its module would
        # stay in sys.modules, on the heap, after the parser has gone).
        with open(path, "rb") as f:
            return f.read()
    try:
        config = cli.parse_args(argv, read_file)
    except cli.UsageError as e:
        if str(e):
            sys.stderr.write("Error: %s\n" % e)
        sys.stderr.write(cli.USAGE)
        return None
    except ConfigError as e:
        sys.stderr.write("Error: %s\n" % e)
        return None
    banner = cli.banner()
    cli.unload_parser()
    return config, banner


def _preload(config: "Config") -> None:
    """Import now, while collections run often, the broker and the modules this
    configuration makes it load on first use ($SYS alone is some 16 KB of code)."""
    import ports.micropython.server  # noqa: F401
    import broker.engine  # noqa: F401  # (the server imports it only as it starts)
    # The start-up code and the heap plan run once and then unload themselves; compiled from
    # source as the server starts, beside its buffers, they would be start-up's peak.
    import ports.micropython.startup  # noqa: F401
    import ports.micropython.heapplan  # noqa: F401
    if config.sys_interval > 0:
        import broker.sysinfo  # noqa: F401
    if config.passwords is not None:
        import broker.auth  # noqa: F401
    if config.bridges:
        import ports.micropython.bridge_link  # noqa: F401
    if any(lst.certfile for lst in config.listeners) or any(b.cafile for b in config.bridges):
        import ports.micropython.tls  # noqa: F401
    if any(lst.path for lst in config.listeners):
        import ports.micropython.unixsock  # noqa: F401


def main(argv: "List[str]") -> int:
    return run(argv)


def out_of_memory(doing: str) -> None:
    """Say in one line that the heap is too small for the broker, and what to do about it."""
    heap = gc.mem_free() + gc.mem_alloc()  # type: ignore[attr-defined]
    sys.stderr.write("Error: out of memory %s the broker (heap %d KB): give micropython a"
                     " larger -X heapsize, or run the .mpy files that make flash builds, which"
                     " need less (make mem lists both)\n" % (doing, heap // 1024))


def load(argv: "List[str]") -> "Optional[Tuple[Config, str]]":
    """Everything -m broker does before it serves: the configuration and the banner, with
    ports.micropython.server and the modules the configuration needs imported; None after
    printing why not (a usage or configuration error, or a heap too small)."""
    gc.threshold(_COMPILE_GC_BYTES)  # type: ignore[attr-defined]
    try:
        parsed = _configure(argv)
        if parsed is None:
            return None
        gc.collect()
        _preload(parsed[0])
    except MemoryError:
        out_of_memory("loading")
        return None
    finally:
        gc.threshold(-1)  # type: ignore[attr-defined]
    gc.collect()
    return parsed


def run(argv: "List[str]", ready: "Optional[Callable[[List[str]], None]]" = None) -> int:
    """main() for a board's main.py: `ready(addresses)` is called once the broker listens
    (the board prints where to connect)."""
    parsed = load(argv)
    if parsed is None:
        return 0 if "-h" in argv or "--help" in argv else 1
    from ports.micropython.server import serve  # loaded already
    return serve(parsed[0], parsed[1], ready)
