"""The application tools/aio_latency.py measures, run by either runtime from the repository's
root: `python|micropython tools/aio_latency_app.py aio|blocking PORT`.

Beside the broker, a second task does 5 ms of work every 10 ms: an asyncio task with the
asyncio front (ports/aio.py), or the same work between two turns of the blocking loop
(Server.step() until the next turn is due). Both keep the same schedule: each turn is due 10 ms
after the last one began. The gap between the starts of two turns is counted; a message on
app/cadence is answered on app/cadence/reply with "turns p50 p99 worst" (ms) since the last
question."""
import sys
import time

sys.path.insert(0, ".")

if hasattr(time, "ticks_ms"):
    ms = time.ticks_ms  # type: ignore[attr-defined]
else:
    def ms():
        return int(time.monotonic() * 1000)

gaps = []
began = []  # when the last turn began


def work():
    """One turn: 5 ms of work; when the next one is due."""
    t = ms()
    if began:
        gaps.append(t - began[0])
        began[0] = t
    else:
        began.append(t)
    while ms() - t < 5:
        pass
    return t + 10


def cadence():
    g = sorted(gaps)
    del gaps[:]
    if not g:
        return "0 0 0 0"
    return "%d %d %d %d" % (len(g), g[len(g) // 2], g[len(g) * 99 // 100], g[-1])


def aio(port):
    import asyncio
    from ports.aio import Broker
    hub = Broker(None, port)

    @hub.on_message("app/cadence")
    def ask(topic, payload):
        hub.publish("app/cadence/reply", cadence())

    async def worker():
        while True:
            due = work()
            await asyncio.sleep(max(0, due - ms()) / 1000)

    async def main():
        await hub.start()
        asyncio.create_task(worker())
        await hub.wait()

    asyncio.run(main())


def blocking(port):
    from broker.config import embedded_default, default_listener
    if sys.implementation.name == "micropython":
        from ports.micropython.startup import start
        config = embedded_default()
        config.listeners[0].port = port
        server = start(config)
    else:
        from ports.cpython.aio import open_server
        config = embedded_default()
        default_listener(config, None)
        config.listeners[0].port = port
        server = open_server(config)
    app = server.broker.local_client("$app", lambda t, p, q, r: app.publish(
        "app/cadence/reply", cadence()))
    app.subscribe("app/cadence")
    due = ms()
    while True:
        server.step(max(0, due - ms()))
        if ms() - due >= 0:
            due = work()


(aio if sys.argv[1] == "aio" else blocking)(int(sys.argv[2]))
