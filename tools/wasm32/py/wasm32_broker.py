# The MicroPython broker (ports/micropython/server.py) on the webassembly port, one call at a
# time from tools/wasm32/serve.mjs, which owns the sockets (see socket.py here) and the clock.
#
# The port collects garbage only between two calls from JavaScript, so serve.mjs calls
# collect() and then the function that reads the heap. Its gc.mem_free() also counts the room
# the heap could grow into (serve.mjs takes that room away and passes its size as `growth`):
# the server is given the real free size here (server._GROWTH: its heap guard, output cap, the
# number of clients the heap holds and the heap plan).
import gc
import sys
import time

import socket

_base = 0
_growth = 0
_parsed = None
_server = None


def collect():
    gc.collect()


def base():
    global _base
    _base = gc.mem_alloc()
    print("MEM base", _base)


def import_server():
    """0 when ports.micropython.server and the engine import in this heap, 1 when they do not
    fit."""
    try:
        import ports.micropython.server  # noqa: F401
        import broker.engine  # noqa: F401
    except MemoryError:
        return 1
    return 0


def _out_of_memory(doing):
    # launch.out_of_memory() would count the room the port's heap could grow into
    sys.stderr.write("Error: out of memory %s the broker (heap %d KB)\n"
                     % (doing, (gc.mem_free() - _growth + gc.mem_alloc()) // 1024))


def configure(args, growth):
    """launch.load() as `-m broker ARGS` runs it, in two calls: this one reads the configuration
    (args: the broker's arguments, as JSON) and unloads the parser, so that the port collects it
    before load() imports the server (launch.load collects in between itself, which this port
    does only between calls). -1 to go on, or the exit status after saying why not."""
    global _parsed, _growth
    import json
    _growth = growth
    argv = json.loads(args)
    from ports.micropython import launch
    try:
        _parsed = launch._configure(argv)
    except MemoryError:
        _out_of_memory("loading")
        return 1
    gc.collect()
    if _parsed is None:
        return 0 if "-h" in argv or "--help" in argv else 1
    return -1


def load():
    from ports.micropython import launch
    try:
        launch._preload(_parsed[0])
    except MemoryError:
        _out_of_memory("loading")
        return 1
    gc.collect()
    return 0


def loaded():
    print("MEM import", gc.mem_alloc() - _base)
    print("FROM", sys.modules["broker.engine"].__file__)


def start(probe):
    """Build and bind the server: 0, or 1 after saying why not."""
    global _server
    import ports.micropython.server as server
    # (a gc.collect() in the server only asks for a collection when the call returns here:
    # its heap guard stays cautious)
    server._GROWTH = _growth
    config, banner = _parsed
    for lst in config.listeners:
        lst.host = "127.0.0.1"  # where serve.mjs listens
    if not probe:
        server._log(0x04, banner)
    try:
        _server = server.Server(config)
        _server.poller = socket.Poller()
        if _server.links is not None:  # the bridges' sockets are on the same poll
            _server.links.poller = _server.poller
        _server.bind()
    except MemoryError:
        _out_of_memory("starting")
        return 1
    except ValueError as e:  # TLS, which this port has not (ports/micropython/tls.py)
        sys.stderr.write("Error: %s\n" % e)
        return 1
    return 0


def plan():
    """The heap plan, as ports.micropython.startup.start() runs it after bind(): 0, or 1 after
    saying why not. A call of its own, so that the port has collected what start-up left."""
    import ports.micropython.server as server
    from ports.micropython.heapplan import plan
    error = plan(_server.broker, _server.config, server._heap_free, server._log)
    if error:
        sys.stderr.write("Error: %s\n" % error)
        return 1
    return 0


def listening(probe):
    """Say so, once serve.mjs listens."""
    if probe:
        print("LISTENING")
    else:
        for address in _server.addresses:
            sys.stderr.write("%d: listening on %s\n" % (int(time.time()), address))


def port():
    return socket._listener.port


def step():
    _server.step(0)
    # A board collects when its heap is full; this port only when asked, once the call is over
    # (an allocation that fails first raises MemoryError): so after every step.
    gc.collect()


def ready():
    """1 when the server's poll has a socket ready now (a connection with output that its
    socket takes): a board's loop steps again at once, so serve.mjs does too."""
    return 1 if _server.poller.ready() else 0


def _count(obj, name):
    table = getattr(obj, name, None)
    if table is None:
        return -1
    if isinstance(table, (dict, list)):
        return len(table)
    return getattr(table, "count", -1)


def mem(label):
    b = _server.broker
    print("MEM %s %d conns=%d sessions=%d subs=%d retained=%d"
          % (label, gc.mem_alloc() - _base, len(_server.conns), _count(b, "sessions"),
             _count(b, "subs"), _count(b, "retained")))


def stop(probe):
    from broker import lifecycle
    lifecycle.shutdown(_server.broker)
    _server._flush_all()
    _server.close()
    if not probe:
        import ports.micropython.server as server
        server._log(0x04, "broker terminating")
