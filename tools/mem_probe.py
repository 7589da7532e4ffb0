# The MicroPython side of tools/mem.py: the real broker (ports/micropython/server.py), with
# the heap read from inside the process at moments the host chooses.
#
#     micropython [-X heapsize=N] tools/mem_probe.py CONFIG
#     micropython [-X heapsize=N] tools/mem_probe.py -p PORT [-c CONFIG]   (the broker's own
#                                                                          arguments)
#
# Run from the directory whose broker/ and ports/ packages are measured (the repository
# root, or a build directory holding only .mpy files). Prints, one line each:
#     MEM base B            heap in use before the broker is imported (interpreter + probe)
#     MEM import N          heap the broker's modules keep after import (N = in use - B)
#     FROM PATH             where broker.engine came from (.py or .mpy)
#     LISTENING             the listener is bound; send commands on stdin from now on
# then serves MQTT, and answers each stdin line "MEM <label>" with
#     MEM <label> N conns=C sessions=S subs=U retained=R
# after gc.collect(), and each line "HEAP <label>" with micropython.mem_info()'s lines (its
# "max free sz: N" is the largest free block, in GC blocks), then
#     HEAP <label> free=F block=B
# (gc.mem_free() and the size of a GC block, in bytes); "QUIT" or end of input stops it. Lines
# starting "ERR" report a failure.
import gc
import sys

if "/rom" not in sys.path:  # tools/romfs_boot.py has set the path to its image already
    sys.path[0] = ""  # the current directory, not tools/: import what the host put there
gc.collect()
gc.collect()
_BASE = gc.mem_alloc()


def _mem():
    gc.collect()
    gc.collect()
    return gc.mem_alloc() - _BASE


print("MEM base", _BASE)
if len(sys.argv) < 2:
    print("ERR usage: mem_probe.py CONFIG")
    sys.exit(2)
try:
    import select

    # What `-m broker` does before serving (ports.micropython.launch): parse, unload the
    # parser, import the server.
    from ports.micropython.launch import load
    _args = sys.argv[1:] if sys.argv[1].startswith("-") else ["-c", sys.argv[1]]
    _parsed = load(_args)
    if _parsed is None:
        print("ERR start", "bad configuration")
        sys.exit(2)
    from ports.micropython.server import Server
except Exception as e:
    print("ERR import", repr(e))
    sys.exit(2)


def _count(obj, name):
    table = getattr(obj, name, None)
    if table is None:
        return -1
    if isinstance(table, (dict, list)):
        return len(table)
    return getattr(table, "count", -1)


class _Stdin:
    """Stands in for the server's bridge links (the handler of sockets that are neither a
    listener nor a client) to answer the commands on stdin (fd 0, registered on the server's
    poller), and passes everything else on to the real links, if any."""

    def __init__(self, probe, links):
        self.probe = probe
        self.links = links

    def event(self, sock, flags, now):
        if sock == 0:
            self.probe.asked = True  # answered once step() has returned: see Probe.run
        elif self.links is not None:
            self.links.event(sock, flags, now)

    def tick(self, now):
        if self.links is not None:
            self.links.tick(now)

    def close(self):
        if self.links is not None:
            self.links.close()


class Probe(Server):
    """Server whose loop (the real one: Server.step()) also answers commands on stdin.

    stdin (fd 0) is registered on the same poller, so a command is answered right after the
    loop turn that saw it, once the broker has served every socket that was ready with it."""

    running = True
    asked = False

    def command(self):
        gc.collect()  # first: the line read next would go wherever the garbage left room
        line = sys.stdin.readline()
        if not line or line.startswith("QUIT"):
            return False
        if line.startswith("MEM"):
            label = line[3:].strip()
            n = _mem()
            b = self.broker
            print("MEM %s %d conns=%d sessions=%d subs=%d retained=%d"
                  % (label, n, len(self.conns), _count(b, "sessions"), _count(b, "subs"),
                     _count(b, "retained")))
        elif line.startswith("HEAP"):
            label = line[4:].strip()
            gc.collect()
            gc.collect()
            import micropython
            micropython.mem_info()
            print("HEAP %s free=%d block=%d" % (label, gc.mem_free(), 4 * _WORD))
        return True

    def run(self):
        self.links = _Stdin(self, self.links)
        self.poller.register(0, select.POLLIN)
        while self.running:
            self.step(250)
            if self.asked:
                # outside step(): a GC in there would also find what its frame still points at
                self.asked = False
                self.running = self.command()
        self.poller.unregister(0)
        from broker import lifecycle
        lifecycle.shutdown(self.broker)
        self._flush_all()
        self.close()


_WORD = 8 if sys.maxsize > 0xFFFFFFFF else 4


def main():
    try:
        config = _parsed[0]
        print("MEM import", _mem())
        print("FROM", sys.modules["broker.engine"].__file__)
        for lst in config.listeners:
            lst.host = "127.0.0.1"
        server = Probe(config)
        server.bind()
    except Exception as e:
        print("ERR start", repr(e))
        return 2
    print("LISTENING")
    server.run()
    return 0


sys.exit(main())
