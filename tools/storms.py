"""The overload scenarios of issue 15 at their full sizes, with the figures the closing note
gives. Measurements, not tests: the integration tests run smaller versions of each
(tests/integration/test_storms.py); this prints what happened and exits 0, or 1 when a broker
could not be started at all.

    .venv/bin/python tools/storms.py [sockets|storm|emfile|all] [-v]

- sockets (item 5): the MicroPython broker with the default configuration (no -c) at heaps of
  192K, 256K and 384K; idle sockets are opened until one is refused or times out. Reports how
  many were open then, whether the broker survived, whether a client connected before kept its
  service meanwhile, and whether a new client is served once the sockets are closed.
- storm (item 6): the MicroPython broker at 256K, default configuration, under
  tools/mem_probe.py (the real server loop, with the heap read inside the process): 100
  clients connect at once, each sends CONNECT, three times; counts the CONNACKs 0x00 and 0x03
  and the clients left unanswered within the connect timeout, and the log lines each storm
  caused; the heap free and its largest free block (gc.mem_free(), micropython.mem_info())
  before and after each, once the broker has settled (12 s: $SYS and the log summaries come
  every 10 s); whether a client subscribing 300 filters (of 14 bytes) in one SUBSCRIBE is
  served, and the most filters one SUBSCRIBE may carry, on a fresh broker and after the
  storms.
- emfile (item 11): the CPython broker, default configuration (and the MicroPython one at 8M,
  max_connections 2000, connect_timeout 60) under `ulimit -n 1024`, with 1,100 idle sockets
  opened; over the next 9 s, the broker's CPU time, the size of its log, and how many of 33
  round trips of a client connected before succeed.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from raw_mqtt import (  # noqa: E402
    CONNACK, PUBACK, PUBLISH, SUBACK, ConnectionClosed, RawClient, connect_packet,
    publish_packet, subscribe_packet,
)

MICROPYTHON = str(ROOT / ".venv" / "bin" / "micropython")
PYTHON = str(ROOT / ".venv" / "bin" / "python")
HOST = "127.0.0.1"
VERBOSE = False
SETTLE_S = 12.0  # past the 10 s of log_limited()'s interval and of the default sys_interval


def log(msg):
    if VERBOSE:
        sys.stderr.write(msg + "\n")


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class BrokerFailed(Exception):
    pass


class Broker:
    """A broker process; its stderr is gathered by a thread (bytes counted, text kept)."""

    def __init__(self, argv, nofile=None, probe=False):
        def limit():
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.probe = probe
        self.proc = subprocess.Popen(
            argv, cwd=str(ROOT), stdin=subprocess.PIPE if probe else subprocess.DEVNULL,
            stdout=subprocess.PIPE if probe else subprocess.DEVNULL, stderr=subprocess.PIPE,
            preexec_fn=limit)
        self.err = []
        self.err_bytes = 0
        self.lock = threading.Lock()
        self.ready = threading.Event()
        threading.Thread(target=self._pump, daemon=True).start()
        if probe:
            self.lines = []
            self.cond = threading.Condition()
            threading.Thread(target=self._pump_out, daemon=True).start()

    def _pump(self):
        for raw in iter(self.proc.stderr.readline, b""):
            with self.lock:
                self.err_bytes += len(raw)
                if len(self.err) < 200000:
                    self.err.append(raw.decode(errors="replace"))
            if b"listening on" in raw:
                self.ready.set()

    def _pump_out(self):
        for raw in iter(self.proc.stdout.readline, b""):
            text = raw.decode(errors="replace").rstrip("\n")
            log("probe: " + text)
            with self.cond:
                self.lines.append(text)
                if text == "LISTENING":
                    self.ready.set()
                self.cond.notify_all()

    def wait_ready(self, timeout=30.0):
        if not self.ready.wait(timeout):
            self.stop()
            raise BrokerFailed(self.log()[-2000:])

    def log(self):
        with self.lock:
            return "".join(self.err)

    def heap(self, label):
        """(free bytes, largest free block in bytes) from the probe."""
        with self.cond:
            start = len(self.lines)
        self.proc.stdin.write(("HEAP %s\n" % label).encode())
        self.proc.stdin.flush()
        deadline = time.monotonic() + 10
        with self.cond:
            while True:
                for i in range(start, len(self.lines)):
                    m = re.match(r"HEAP %s free=(\d+) block=(\d+)" % re.escape(label),
                                 self.lines[i])
                    if m:
                        blocks = None
                        for text in self.lines[start:i]:
                            f = re.search(r"max free sz: (\d+)", text)
                            if f:
                                blocks = int(f.group(1))
                        return int(m.group(1)), blocks * int(m.group(2))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError("no answer from the probe")
                self.cond.wait(left)

    def cpu_s(self):
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        if self.proc.poll() is None:
            if self.probe:
                try:
                    self.proc.stdin.write(b"QUIT\n")
                    self.proc.stdin.flush()
                except OSError:
                    pass
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def micropython_broker(heap, port, config=None, probe=False, nofile=None):
    args = ["-p", str(port)]
    if config is not None:
        args += ["-c", str(config)]
    if probe:
        argv = [MICROPYTHON, "-X", "heapsize=" + heap, "tools/mem_probe.py"] + args
    else:
        argv = [MICROPYTHON, "-X", "heapsize=" + heap, "-m", "broker"] + args
    b = Broker(argv, nofile=nofile, probe=probe)
    b.wait_ready()
    return b


def round_trip(port, client_id, timeout=5.0):
    """A client connects, subscribes at QoS 1 and receives its own QoS 1 message."""
    c = RawClient(HOST, port, timeout=timeout)
    try:
        if c.connect(client_id, timeout=timeout).return_code != 0:
            return False
        topic = "rt/" + client_id
        c.subscribe([(topic, 1)], timeout=timeout)
        return self_publish(c, topic, timeout)
    finally:
        c.disconnect()


def self_publish(c, topic, timeout, packet_id=7):
    c.send(publish_packet(topic, b"ok", qos=1, packet_id=packet_id))
    got = set()
    deadline = time.monotonic() + timeout
    while len(got) < 2:
        p = c.recv_packet(max(0.01, deadline - time.monotonic()))
        if p.type == PUBLISH and p.payload == b"ok":
            if p.qos:
                c.send(bytes([PUBACK << 4, 2, p.packet_id >> 8, p.packet_id & 0xFF]))
            got.add(PUBLISH)
        elif p.type == PUBACK:
            got.add(PUBACK)
    return True


def open_idle(port, limit, timeout=2.0):
    """Idle sockets until one is refused or times out (or limit); (sockets, why it stopped)."""
    socks = []
    why = "limit of %d reached" % limit
    for _ in range(limit):
        s = socket.socket()
        s.settimeout(timeout)
        try:
            s.connect((HOST, port))
        except OSError as e:
            s.close()
            why = "refused: %s" % (e.strerror or e)
            break
        socks.append(s)
    return socks, why


# ---------------------------------------------------------------------------------------------
# item 5


def sockets(heaps=("192K", "256K", "384K"), limit=1000):
    print("item 5: idle sockets against the MicroPython broker, default configuration")
    for heap in heaps:
        port = free_port()
        b = micropython_broker(heap, port)
        keeper = RawClient(HOST, port)
        assert keeper.connect("keeper").return_code == 0
        keeper.subscribe([("keep/t", 1)])
        socks, why = open_idle(port, limit)
        time.sleep(1.0)
        alive = b.proc.poll() is None
        kept = False
        if alive:
            try:
                kept = self_publish(keeper, "keep/t", 5.0)
            except (ConnectionClosed, TimeoutError, OSError):
                kept = False
        for s in socks:
            s.close()
        keeper.close()
        served = False
        if b.proc.poll() is None:
            time.sleep(1.0)
            try:
                served = round_trip(port, "after")
            except (ConnectionClosed, TimeoutError, OSError, AssertionError):
                served = False
        status = b.stop()
        m = re.search(r"max_connections (\d+)", b.log())
        print("  -X heapsize=%s: %d sockets open when %s; broker %s; the client connected"
              " before %s; a new client afterwards %s (exit status %s)%s"
              % (heap, len(socks), why, "alive" if alive else "DIED",
                 "kept its service" if kept else "LOST its service",
                 "served" if served else "NOT served", status,
                 "; log: %s" % m.group(0) if m else ""))


# ---------------------------------------------------------------------------------------------
# item 6

def big_subscribe(port, n=300, client_id="big"):
    """A client subscribing n filters in one SUBSCRIBE: 'ok', or what went wrong."""
    c = RawClient(HOST, port, timeout=10)
    try:
        if c.connect(client_id).return_code != 0:
            return "refused at CONNECT"
        c.send(subscribe_packet(1, [("big/%03d/value" % i, 1) for i in range(n)]))
        try:
            p = c.recv_packet(10)
        except ConnectionClosed:
            return "DISCONNECTED"
        except TimeoutError:
            return "NOT ANSWERED"
        if p.type != SUBACK:
            return "got %r" % p
        bad = sum(1 for code in p.codes if code == 0x80)
        return "ok" if not bad else "SUBACK with %d failures" % bad
    finally:
        c.disconnect()


def largest_subscribe(port, hi=400, step=10):
    """The most filters (of 14 bytes) one SUBSCRIBE may carry and be served, to `step`."""
    lo = 0  # served
    while hi - lo > step:
        mid = max(lo + step, (lo + hi) // 2 // step * step)
        if big_subscribe(port, mid, "probe-%d" % mid) == "ok":
            lo = mid
        else:
            hi = mid
        time.sleep(0.2)
    return lo


def connect_storm(port, n, timeout):
    """n clients connect at once and send CONNECT: ({CONNACK return code, "closed", "none" (no
    answer within timeout) or "garbage ...": count}, the sockets, still open)."""
    sel = selectors.DefaultSelector()
    state = {}
    for i in range(n):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex((HOST, port))
        state[s] = [connect_packet("storm-%d" % i), b"", None]
        sel.register(s, selectors.EVENT_WRITE)
    deadline = time.monotonic() + timeout
    waiting = n
    while waiting and time.monotonic() < deadline:
        for key, ev in sel.select(0.1):
            s = key.fileobj
            st = state[s]
            if ev & selectors.EVENT_WRITE:
                try:
                    s.send(st[0])
                except OSError:
                    st[2] = "closed"
                    waiting -= 1
                    sel.unregister(s)
                    continue
                sel.modify(s, selectors.EVENT_READ)
                continue
            try:
                data = s.recv(16)
            except OSError:
                data = b""
            if not data:
                st[2] = "closed"
            else:
                st[1] += data
                if len(st[1]) < 4:
                    continue
                ok = st[1][0] == CONNACK << 4 and st[1][1] == 2
                st[2] = st[1][3] if ok else "garbage %r" % st[1]
            waiting -= 1
            sel.unregister(s)
    counts = {}
    for st in state.values():
        k = st[2] if st[2] is not None else "none"
        counts[k] = counts.get(k, 0) + 1
    return counts, list(state)


def storm(heap="256K", n=100, rounds=3):
    print("item 6: %d clients connecting at once, MicroPython at %s, default configuration"
          % (n, heap))
    port = free_port()
    b = micropython_broker(heap, port, probe=True)
    time.sleep(SETTLE_S)
    free0, largest0 = b.heap("fresh")
    print("  a fresh broker (%d B free, largest free block %d B): 300 filters in one SUBSCRIBE"
          " %s; the most one SUBSCRIBE may carry: %d filters"
          % (free0, largest0, big_subscribe(port), largest_subscribe(port)))
    b.stop()
    port = free_port()
    b = micropython_broker(heap, port, probe=True)
    time.sleep(SETTLE_S)  # $SYS's first values are made, as in a broker that has run a while
    free0, largest0 = b.heap("before")
    print("  before: %d B free, largest free block %d B" % (free0, largest0))
    for r in range(rounds):
        start_log = len(b.log())
        counts, socks = connect_storm(port, n, 12.0)
        for s in socks:
            try:
                s.send(b"\xe0\x00")  # DISCONNECT
            except OSError:
                pass
            s.close()
        time.sleep(SETTLE_S)  # the flood's log summary, and $SYS's values made again
        free1, largest1 = b.heap("after-%d" % r)
        text = b.log()[start_log:]
        oom = text.count("Out of memory while serving")
        late = text.count("sent no CONNECT in time")
        other = sum(v for k, v in counts.items() if k not in (0, 3, "closed", "none"))
        print("  storm %d: CONNACK 0x00 %d, 0x03 %d, closed without CONNACK %d, unanswered %d%s;"
              " log: %d lines, %d 'Out of memory', %d 'sent no CONNECT in time';"
              " after: %d B free, largest free block %d B"
              % (r + 1, counts.get(0, 0), counts.get(3, 0), counts.get("closed", 0),
                 counts.get("none", 0), ", other %r" % counts if other else "",
                 text.count("\n"), oom, late, free1, largest1))
    print("  after the storms: 300 filters in one SUBSCRIBE %s; the most one SUBSCRIBE may carry:"
          " %d filters" % (big_subscribe(port), largest_subscribe(port)))
    if b.stop() not in (0, None):
        print("  broker exit status %s" % b.proc.returncode)


# ---------------------------------------------------------------------------------------------
# item 11

def emfile_one(name, start, idle=1100, seconds=9.0, trips=33):
    port = free_port()
    b = start(port)
    keeper = RawClient(HOST, port)
    assert keeper.connect("keeper").return_code == 0
    keeper.subscribe([("keep/t", 1)])
    socks, why = open_idle(port, idle, timeout=3.0)
    log0 = b.err_bytes
    cpu0 = b.cpu_s()
    t0 = time.monotonic()
    ok = 0
    for i in range(trips):
        try:
            if self_publish(keeper, "keep/t", 2.0, packet_id=1 + i):
                ok += 1
        except (ConnectionClosed, TimeoutError, OSError):
            pass
        rest = t0 + seconds * (i + 1) / trips - time.monotonic()
        if rest > 0:
            time.sleep(rest)
    elapsed = time.monotonic() - t0
    cpu = b.cpu_s() - cpu0
    logged = b.err_bytes - log0
    for s in socks:
        s.close()
    keeper.close()
    time.sleep(1.0)
    try:
        served = round_trip(port, "after")
    except (ConnectionClosed, TimeoutError, OSError, AssertionError):
        served = False
    b.stop()
    print("  %s: %d idle sockets opened (%s); over the next %.1f s: CPU %.2f s (%.0f%%), log"
          " %d bytes, %d of %d round trips of a client connected before; a new client"
          " afterwards %s" % (name, len(socks), why, elapsed, cpu, 100 * cpu / elapsed, logged,
                              ok, trips, "served" if served else "NOT served"))


def emfile():
    print("item 11: ulimit -n 1024, 1,100 idle sockets")

    def cpython(port):
        b = Broker([PYTHON, "-m", "broker", "-p", str(port)], nofile=1024)
        b.wait_ready()
        return b

    def micropython(port):
        conf = Path("/tmp/storms-emfile-%d.conf" % os.getpid())
        # connect_timeout 60: the idle sockets hold the descriptors all through the 9 s
        conf.write_text("listener %d 127.0.0.1\nallow_anonymous true\nmax_connections 2000\n"
                        "connect_timeout 60\n" % port)
        return micropython_broker("8M", port, config=conf, nofile=1024)

    emfile_one("CPython", cpython)
    emfile_one("MicroPython -X heapsize=8M, max_connections 2000, connect_timeout 60",
               micropython)


def main():
    global VERBOSE
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", nargs="?", default="all", choices=["sockets", "storm", "emfile",
                                                                 "all"])
    ap.add_argument("-v", action="store_true")
    args = ap.parse_args()
    VERBOSE = args.v
    try:
        if args.what in ("sockets", "all"):
            sockets()
        if args.what in ("storm", "all"):
            storm()
        if args.what in ("emfile", "all"):
            emfile()
    except BrokerFailed as e:
        print("a broker could not be started: %s" % e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
