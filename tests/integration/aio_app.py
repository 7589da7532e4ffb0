"""An asyncio application with the broker inside (ports/aio.py), for test_aio.py, run by either
runtime from the repository's root: `python|micropython tests/integration/aio_app.py PORT`.

Beside the broker, a second task does 5 ms of work every 10 ms and counts its turns and its
longest gap; `app/ticks` asks for them (published on app/ticks/reply), `app/stop` stops."""
import sys
import time

sys.path.insert(0, ".")
import asyncio  # noqa: E402

from ports.aio import Broker  # noqa: E402

if hasattr(time, "ticks_ms"):
    def ms():
        return time.ticks_ms()
else:
    def ms():
        return int(time.monotonic() * 1000)

hub = Broker(None, int(sys.argv[1]))
state = {"turns": 0, "worst": 0, "events": []}


@hub.authenticate
def authenticate(client_id, username, password, peer):
    return username != "mallory"


@hub.authorize_subscribe
def authorize_subscribe(client_id, username, topic_filter, qos):
    return not topic_filter.startswith("forbidden/")


@hub.on_connect
def on_connect(client_id, username, peer):
    state["events"].append("up " + client_id)


@hub.on_message("echo/#")
def echo(topic, payload):
    hub.publish(b"echoed/" + topic[5:], payload)


@hub.on_message("app/ticks")
def ticks(topic, payload):
    hub.publish("app/ticks/reply", "%d %d %s" % (state["turns"], state["worst"],
                                                 ",".join(state["events"])))


@hub.on_message("app/stop")
def stop(topic, payload):
    asyncio.create_task(hub.stop())


async def worker():
    last = ms()
    while True:
        t = ms()
        while ms() - t < 5:
            pass
        await asyncio.sleep(0.01)
        now = ms()
        state["turns"] += 1
        if now - last > state["worst"]:
            state["worst"] = now - last
        last = now


async def main():
    asyncio.create_task(worker())
    await hub.serve()
    print("stopped")


asyncio.run(main())
