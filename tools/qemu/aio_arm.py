"""The asyncio front (ports/aio.py) on ARM under QEMU, with MicroPython's own asyncio as a
Pico W has it: make test-arm runs it after the core tests. The QEMU port has no sockets, so the
broker starts with no listener (a stand-in `socket` module only lets the server's module import),
and its clients are in-process ones: an application with a message callback (a hook by filter), clients
publishing and subscribing through the broker, and a second task that must keep its cadence.

    import aio_arm
    aio_arm.main()  # prints "aio: ok" or "aio: FAIL why"; 0 or 1
"""
import sys

import asyncio

_N = 20
_CADENCE_MS = 10


class _NoSocket:
    """The server's module imports socket; a broker with no listener opens none."""


def _config():
    from broker.config import parse

    def read(path):
        raise OSError(2)
    return parse("allow_anonymous true\nmax_connections 8\n", "<aio_arm>", None, read)


def main():
    sys.modules["socket"] = _NoSocket
    import time
    from ports.aio import Broker
    from ports.micropython import server as port
    lines = []
    port._log = lambda level, msg: lines.append(msg)  # (the port's wants time.time())
    hub = Broker(_config())
    seen = []

    @hub.on_message("sensor/#")
    def sensor(topic, payload):
        seen.append(payload)

    got = []
    ticks = []

    async def cadence():
        while True:
            ticks.append(time.ticks_ms())
            await asyncio.sleep_ms(_CADENCE_MS)

    async def run():
        await hub.start()
        if hub.addresses:
            return "listening with no listener configured: %r" % hub.addresses
        beat = asyncio.create_task(cadence())
        sub = hub.local_client("arm-sub", lambda t, p, q, r: got.append((t, p, q)))
        sub.subscribe("sensor/#", 1)
        pub = hub.local_client("arm-pub")
        for i in range(_N):
            pub.publish("sensor/t%d" % (i % 3), b"%d" % i, i % 2)
            await asyncio.sleep_ms(5)
        hub.publish("sensor/app", b"app", 1)
        await asyncio.sleep_ms(50)
        beat.cancel()
        await hub.stop()
        await hub.wait()
        if len(got) != _N + 1:
            return "the subscriber got %d of %d messages" % (len(got), _N + 1)
        if [p for _, p, _ in got] != [b"%d" % i for i in range(_N)] + [b"app"]:
            return "messages out of order or altered: %r" % got
        if len(seen) != _N + 1:
            return "the message callback saw %d of %d" % (len(seen), _N + 1)
        if len(ticks) < 10:
            return "the second task ran %d times" % len(ticks)
        late = max(time.ticks_diff(ticks[i + 1], ticks[i]) for i in range(len(ticks) - 1))
        print("aio: %d local messages, the second task %d turns, its longest gap %d ms"
              % (len(got), len(ticks), late))
        return ""

    try:
        why = asyncio.run(run())
    except Exception as e:
        sys.print_exception(e)
        why = repr(e)
    print("aio: " + ("FAIL " + why if why else "ok"))
    return 1 if why else 0
