# The MicroPython side of tools/mem.py: the real broker (ports/micropython/server.py), with
# the heap read from inside the process at moments the host chooses.
#
#     micropython [-X heapsize=N] tools/mem_probe.py CONFIG
#
# Run from the directory whose broker/ and ports/ packages are measured (the repository
# root, or a build directory holding only .mpy files). Prints, one line each:
#     MEM base B            heap in use before the broker is imported (interpreter + probe)
#     MEM import N          heap the broker's modules keep after import (N = in use - B)
#     FROM PATH             where broker.engine came from (.py or .mpy)
#     LISTENING             the listener is bound; send commands on stdin from now on
# then serves MQTT, and answers each stdin line "MEM <label>" with
#     MEM <label> N conns=C sessions=S subs=U retained=R
# after gc.collect(); "QUIT" or end of input stops it. Lines starting "ERR" report a failure.
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
    import time

    # What `-m broker` does before serving (ports.micropython.launch): parse, unload the
    # parser, import the server.
    from ports.micropython.launch import load
    _parsed = load(["-c", sys.argv[1]])
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


class Probe(Server):
    """Server whose loop also watches stdin for commands between turns.

    The loop is the one Server.serve() runs, one ipoll() turn at a time; stdin (fd 0) is
    registered on the same poller, so a command is answered only between two turns, when the
    broker has finished with every packet that arrived before it."""

    def command(self):
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
        return True

    def run(self):
        broker = self.broker
        conns = self.conns
        listeners = self.listeners
        poller = self.poller
        poller.register(0, select.POLLIN)
        ipoll = poller.ipoll
        ticks_ms = time.ticks_ms
        running = True
        while running:
            for ev in ipoll(250):
                sock = ev[0]
                flags = ev[1]
                conn = conns.get(sock)
                if conn is None:
                    if sock in listeners:
                        self._accept(sock)
                    elif sock == 0:
                        running = self.command()
                        if not running:
                            break
                    continue
                if flags & select.POLLOUT:
                    self._flush(conn)
                if flags & (select.POLLIN | select.POLLERR | select.POLLHUP):
                    self._read(conn)
            broker.tick(ticks_ms())
            self._flush_all()
        poller.unregister(0)
        broker.shutdown()
        self._flush_all()
        for conn in list(conns.values()):
            self._drop(conn)
        for sock in listeners:
            sock.close()


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
