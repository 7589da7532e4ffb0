"""make mem's frozen(ARM) column, inside the firmware of make test-arm (tools/mem.py drives it
through the raw REPL). MicroPython's QEMU port has no sockets: the broker starts as a board's
does (ports.micropython.launch.load, then the Server's start-up, with a stand-in `socket`
module that only lets the server's module import), and the standard scenario's clients are
in-process pipes that ports/loop.py reads and flushes as it does sockets. The clients' own
bytes (their packets, what they received) are in the same heap, a few hundred bytes.

    import armmem
    armmem.run(CONF, HEAP, K, scenario)  # HEAP: the firmware's heap; K: KB the broker gets
    armmem.run(CONF, HEAP, K, scenario, "sensorhub", (USER, PASSWORD))  # the application

With K, one filler allocation made first leaves the broker K KB of the heap (the share a heap
of K KB gives its objects, GC tables excluded, as this heap gives), and the server's heap checks
see K KB, not the heap around the filler. Prints "MEM import N", "MEM idle N" (bytes the broker
holds, as tools/mem_probe.py counts them) and, with scenario, "SCENARIO ok" or "SCENARIO fail:
why"; a MemoryError ends the run with its traceback. With an application (run_app()), "MEM
idle" is what it holds once started, and the scenario is served by its asyncio front.
"""
import gc
import sys
import time

_filler = 0


class _Gc:
    """gc for the server's heap checks: the filler is not part of the broker's heap."""
    collect = gc.collect
    mem_free = gc.mem_free
    threshold = gc.threshold

    @staticmethod
    def mem_alloc():
        return gc.mem_alloc() - _filler


def _log(level, msg):
    pass


class _NoSocket:
    """The server's module imports socket; nothing here opens one."""


def _fill(heap, k):
    global _filler
    gc.collect()
    alloc = gc.mem_alloc()
    free = gc.mem_free()
    want = (alloc + free) * k * 1024 // heap  # the pool of a heap of k KB
    n = alloc + free - want
    if n <= 0:
        return None
    filler = bytearray(n - 64)  # (its object and the allocator's rounding)
    _filler = gc.mem_alloc() - alloc
    return filler


def _mem(base):
    gc.collect()
    gc.collect()
    return gc.mem_alloc() - _filler - base


def run(conf, heap, k, scenario, app=None, login=None):
    filler = _fill(heap, k) if k else None
    sys.modules["socket"] = _NoSocket
    gc.collect()
    base = gc.mem_alloc() - _filler
    if app:
        run_app(app, login, base, scenario)
        return
    from ports.micropython.launch import load
    parsed = load(["-c", conf])
    if parsed is None:
        print("SCENARIO fail: the configuration")
        return
    print("MEM import", _mem(base))
    from ports.micropython import server as port
    from ports.micropython import startup
    port.gc = startup.gc = _Gc
    port._log = _log  # the port's writes a time.time() the QEMU port has not
    server = _Pipes(parsed[0])
    startup.unload()  # as bind() does
    print("MEM idle", _mem(base))
    if scenario:
        why = _drive(server, server.scenario())
        print("SCENARIO " + (why or "ok"))
    del filler


class _Sock:
    """Both ends of a connection: inbox holds what the client sent and the broker has yet to
    read; what the broker sends is parsed as it comes, acknowledged, and counted."""

    code = 0  # a CONNACK's refusal

    def __init__(self, server, client_id, will, login):
        self.server = server
        self.inbox = bytearray()
        self.rx = bytearray()
        self.eof = False
        self.got = 0         # PUBLISHes received
        self.sum = 0         # their _digest()s added
        self.acks = 0        # CONNACK, SUBACK, PINGRESP
        self.granted = 0     # SUBACK return codes below 0x80
        self.outgoing = 0    # QoS 1 and 2 PUBLISHes not yet completed
        self.qos2 = 0        # QoS 2 PUBLISHes received, not yet released
        self.mid = 0
        flags = 2
        payload = _field(client_id)
        if will is not None:
            flags |= 0x04 | (1 << 3)
            payload += _field(will[0]) + _field(will[1])
        if login is not None:
            flags |= 0xC0
            payload += _field(login[0]) + _field(login[1])
        self.put(0x10, _field(b"MQTT") + bytes([4, flags, 0, 60]) + payload)

    def put(self, b0, body):
        self.inbox.append(b0)
        n = len(body)
        while True:
            if n > 127:
                self.inbox.append((n & 127) | 128)
                n >>= 7
            else:
                self.inbox.append(n)
                break
        self.inbox.extend(body)

    def publish(self, topic, payload, qos, retain):
        body = _field(topic)
        if qos:
            self.mid += 1
            self.outgoing += 1
            body += bytes([self.mid >> 8, self.mid & 255])
        self.put(0x30 | (qos << 1) | (1 if retain else 0), body + payload)

    def subscribe(self, filters):
        self.mid += 1
        body = bytes([self.mid >> 8, self.mid & 255])
        for f, q in filters:
            body += _field(f) + bytes([q])
        self.put(0x82, body)

    def take(self, buf, off, n):
        rx = self.rx
        rx.extend(memoryview(buf)[off:off + n])
        pos = 0
        while len(rx) - pos >= 2:
            at = pos + 1
            size = 0
            shift = 0
            while at < len(rx) and rx[at] & 128:
                size |= (rx[at] & 127) << shift
                shift += 7
                at += 1
            if at >= len(rx):
                break
            size |= rx[at] << shift
            at += 1
            if len(rx) - at < size:
                break
            self.packet(rx[pos], rx, at, at + size)
            pos = at + size
        if pos:
            self.rx = rx[pos:]

    def packet(self, b0, rx, at, end):
        kind = b0 >> 4
        if kind == 3:
            qos = (b0 >> 1) & 3
            tl = (rx[at] << 8) | rx[at + 1]
            ps = at + 2 + tl + (2 if qos else 0)
            self.got += 1
            self.sum += _digest(rx, at + 2, at + 2 + tl) + _digest(rx, ps, end) + qos + (
                4 if b0 & 1 else 0)
            if qos:
                mid = rx[ps - 2:ps]
                if qos == 1:
                    self.put(0x40, mid)
                else:
                    self.qos2 += 1
                    self.put(0x50, mid)
        elif kind == 6:  # PUBREL
            self.qos2 -= 1
            self.put(0x70, rx[at:end])
        elif kind == 5:  # PUBREC
            self.put(0x62, rx[at:end])
        elif kind == 4 or kind == 7:
            self.outgoing -= 1
        else:
            self.acks += 1
            if kind == 2 and rx[at + 1]:
                self.code = rx[at + 1]
            if kind == 9:
                for i in range(at + 2, end):
                    if rx[i] < 0x80:
                        self.granted += 1


def _field(s):
    if isinstance(s, str):
        s = s.encode()
    return bytes([len(s) >> 8, len(s) & 255]) + s


def _digest(data, start, end):
    h = 0
    for i in range(start, end):
        h = (h * 31 + data[i]) & 0xFFFFF
    return h


def _expect(topic, payload, qos, retain):
    t = topic.encode()
    return _digest(t, 0, len(t)) + _digest(payload, 0, len(payload)) + qos + (4 if retain else 0)


def _make_class():
    from broker import keepalive, lifecycle
    from ports.loop import drop, event
    from ports.micropython.server import Server

    class Pipes(Server):
        """The server, its sockets the pipes of _Sock."""


        def key(self, sock):
            return sock

        def recv(self, sock, buf):
            n = len(sock.inbox)
            if not n:
                return 0 if sock.eof else None
            if n > len(buf):
                n = len(buf)
            buf[0:n] = sock.inbox[0:n]
            sock.inbox = sock.inbox[n:]
            return n

        def send(self, sock, buf, off, n):
            sock.take(buf, off, n)
            return n

        def modify(self, conn, mask):
            pass

        def discard(self, sock):
            pass

        def connect(self, client_id, will=None, sock=None):
            if sock is None:
                sock = _Sock(self, client_id, will, None)
            conn = lifecycle.accept(self.broker, sock, "pipe")
            if conn is None:
                return None
            self.conns[sock] = conn
            return sock

        def settle(self, until):
            """Serve the pipes until until() or nothing moves; until()'s answer."""
            for _ in range(200):
                if until():
                    return True
                moved = False
                for sock, conn in list(self.conns.items()):
                    if sock.inbox or sock.eof:
                        moved = True
                        event(self, conn, 1)
                        self._flush_all()
                keepalive.tick(self.broker, time.ticks_ms())
                self._flush_all()
                if not moved and until():
                    return True
            return until()

        def scenario(self):
            """The standard scenario, as a generator: each value it yields is what it waits
            for (a function true once it happened), and it is sent back whether it did; it
            returns "" or what failed."""
            n = 8
            will = ("will/scen-c7", b"gone: scen-c7")
            clients = []
            for i in range(n):
                c = self.connect("scen-c%d" % i, will if i == n - 1 else None)
                if c is None:
                    return "client %d not accepted" % i
                clients.append(c)
            if not (yield lambda: all(c.acks == 1 for c in clients)):
                return "CONNACKs"
            for i, c in enumerate(clients):
                c.subscribe([("mem/+/c%d" % i, 2), ("mem/all", 1)] + (
                    [("will/#", 1)] if i == 0 else []))
            if not (yield lambda: all(c.acks == 2 for c in clients)):
                return "SUBACKs"
            if sum(c.granted for c in clients) != 2 * n + 1:
                return "subscriptions refused"
            want = [0] * n
            count = [0] * n
            for i, c in enumerate(clients):
                to = (i + 1) % n
                for q in range(3):
                    topic = "mem/q%d/c%d" % (q, to)
                    payload = b"%d->%d at qos %d" % (i, to, q)
                    c.publish(topic, payload, q, False)
                    want[to] += _expect(topic, payload, q, False)
                    count[to] += 1
                payload = b"to all from %d" % i
                c.publish("mem/all", payload, i % 3, False)
                for j in range(n):
                    want[j] += _expect("mem/all", payload, min(i % 3, 1), False)
                    count[j] += 1
                c.publish("ret/c%d" % i, b"retained %d" % i, i % 3, True)

            def arrived():
                for j in range(n):
                    c = clients[j]
                    if c.got < count[j] or c.outgoing or c.qos2:
                        return False
                return True

            if not (yield arrived):
                return "the routed messages: %r of %r" % ([c.got for c in clients], count)
            for j in range(n):
                if clients[j].got != count[j] or clients[j].sum != want[j]:
                    return "client %d got other messages than it should" % j
            watcher = clients[0]
            before = watcher.got
            victim = clients.pop()
            victim.eof = True
            yield lambda: victim not in self.conns
            if not (yield lambda: watcher.got > before):
                return "the will"
            if watcher.sum - want[0] != _expect(will[0], will[1], 1, False):
                return "another message than the will"
            late = self.connect("scen-late")
            if late is None:
                return "the late client not accepted"
            late.subscribe([("ret/#", 2)])
            if not (yield lambda: late.got >= n and not late.qos2):
                return "the retained messages"
            retained = 0
            for i in range(n):
                retained += _expect("ret/c%d" % i, b"retained %d" % i, i % 3, True)
            if late.sum != retained:
                return "retained messages differ"
            for c in clients + [late]:
                c.put(0xE0, b"")
            if not (yield lambda: not self.conns):
                return "the DISCONNECTs"
            for sock in list(self.conns):
                drop(self, self.conns[sock])
            return ""

    return Pipes


def _drive(server, steps):
    """Run steps (Pipes.scenario()), serving the pipes whenever it waits; what it returns. A
    function, not a method of Pipes: that class is made after the figures' base, and counts."""
    ok = None
    try:
        while True:
            ok = server.settle(steps.send(ok))
    except StopIteration as e:
        return e.value


def _Pipes(config):
    return _make_class()(config)


# The example application (make mem's "app(ARM)" column): its main.py frozen as NAME.py and
# run as a board runs it, its broker the asyncio front (ports/aio.py) with the pipes of _Sock for
# sockets, which asyncio's poller watches as it watches a board's sockets (io.IOBase's ioctl).
_PERIOD_S = 0.1  # the application's readings during the scenario, not every 10 s
_WAIT_MS = 20000


class _Machine:
    """machine for the application: no ADC nor LED pin (it stands them in), and a soft reset,
    which would restart the firmware under the probe, stops the run instead."""

    @staticmethod
    def soft_reset():
        raise SystemExit("the application stopped")


class _Clock:
    """time for boardmain's default arguments: the QEMU port has no time.time()."""
    sleep = time.sleep
    time = time.ticks_ms


def _poll_class():
    import asyncio
    import io
    from ports.micropython.server import Server

    class PollSock(io.IOBase, _Sock):
        def ioctl(self, req, arg):
            if req == 3:  # MP_STREAM_POLL: readable when there is something to read or EOF
                return arg & (5 if self.inbox or self.eof else 4)
            return -1

        def close(self):
            pass

    class PollPipes(_make_class()):
        """The pipes served by the asyncio front: registered in its poller as sockets are."""
        login = None  # (username, password) of the scenario's clients
        modify = Server.modify
        discard = Server.discard

        def connect(self, client_id, will=None, login=None):
            sock = super().connect(client_id, will,
                                   PollSock(self, client_id, will, login or self.login))
            if sock is not None:
                self.poller.register(sock, 1)
            return sock

        async def drive_async(self, steps, stopped):
            """_drive(), the pipes served by the front while this task sleeps, until stopped()
            (the front's loop failed: a heap too small)."""
            ok = None
            try:
                while True:
                    until = steps.send(ok)
                    start = time.ticks_ms()
                    while not until() and not stopped() and time.ticks_diff(
                            time.ticks_ms(), start) < _WAIT_MS:
                        await asyncio.sleep_ms(1)
                    ok = until()
            except StopIteration as e:
                return e.value

        def app_checks(self, lit):
            """The application's own work: a stranger refused by its authenticate hook, the LED
            switched on by cmd/led (lit()) and told on state/led, its readings published while
            the scenario ran."""
            stranger = self.connect("scen-stranger", None, ("mallory", b"x"))
            if stranger is None:
                return "the stranger not accepted"
            if not (yield lambda: stranger not in self.conns):
                return "the stranger still connected"
            if stranger.code != 5:
                return "the stranger not refused by the authenticate hook"
            c = self.connect("scen-app")
            if c is None or not (yield lambda: c.acks == 1):
                return "the application's client"
            c.subscribe([("state/led", 1), ("sensors/temperature", 1)])
            if not (yield lambda: c.acks == 2):
                return "its SUBACK"
            c.publish("cmd/led", b"on", 1, False)
            if not (yield lambda: lit() and c.got >= 3 and not c.outgoing):
                return "cmd/led and the readings: %d messages, the LED %s" % (
                    c.got, "on" if lit() else "off")
            c.put(0xE0, b"")
            if not (yield lambda: not self.conns):
                return "its DISCONNECT"
            return ""

    return PollPipes


def run_app(name, login, base, scenario):
    """Run the application NAME until it has served the standard scenario (its clients logging
    in as login) and app_checks(): "MEM idle N" once it started, then "SCENARIO ..."."""
    import asyncio
    from ports.micropython import server as port
    from ports.micropython import startup

    def start(config, log=None):  # startup.start: the pipes, no listener
        from ports.micropython import startup  # (unloaded below: no name of it kept)
        port.gc = startup.gc = _Gc
        port._log = _log
        server = _poll_class()(config)
        server.login = login
        startup.unload()
        return server

    startup.start = start
    del startup
    sys.modules["machine"] = _Machine
    sys.modules["time"] = _Clock
    import boardmain  # noqa: F401  # (its default arguments read _Clock)
    del sys.modules["time"]
    asyncio_run = asyncio.run

    async def serve(main):
        app = sys.modules[name]
        app.PERIOD_S = _PERIOD_S
        task = asyncio.create_task(main)
        hub = app.hub
        why = ""
        try:
            while hub.server is None and not task.done():
                await asyncio.sleep_ms(1)
            await asyncio.sleep_ms(50)
            print("MEM idle", _mem(base))
            server = hub.server
            if server is None:
                why = "the application did not start"
            elif scenario:
                def stopped():
                    return hub.server is None

                why = await server.drive_async(server.scenario(), stopped)
                if not why:
                    why = await server.drive_async(
                        server.app_checks(lambda: app.led.value() == 1), stopped)
        except Exception as e:
            sys.print_exception(e)
            why = repr(e)
        try:
            await hub.stop()
            await task
        except Exception as e:
            sys.print_exception(e)
            why = why or repr(e)
        if scenario:
            print("SCENARIO " + (why or "ok"))

    def probe(main):  # asyncio.run for the application
        asyncio_run(serve(main))

    asyncio.run = probe
    try:
        __import__(name)
    except SystemExit as e:
        print("SCENARIO fail: %s" % e)
    finally:
        asyncio.run = asyncio_run
