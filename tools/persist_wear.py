"""Bytes the persistence journal writes to flash for a home-sensor load, against writing the
whole state at every change (the naive way).

    .venv/bin/python tools/persist_wear.py [--hours H] [--sensors N] [--period S] [--autosave S]

The load (issue 18): N sensors (20), each publishing a retained reading at QoS 1 every S
seconds (10), one persistent subscriber to all of them at QoS 1, autosave_interval 60. It runs
the broker's core in this process with a simulated clock (no sockets, no waiting: an hour takes
seconds) and counts every byte broker.persist hands the port's write(), compactions included,
as ports/persist.py would write them. A measurement, not a test.
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests", "core")]

from broker import persist  # noqa: E402
from broker.const import PUBACK, PUBLISH  # noqa: E402
from harness import Hub  # noqa: E402
import packets  # noqa: E402


class Counter:
    def __init__(self) -> None:
        self.n = 0

    def write(self, buf: "object", off: int, n: int) -> None:
        self.n += n


def main(argv: "list[str] | None" = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--sensors", type=int, default=20)
    ap.add_argument("--period", type=int, default=10, help="seconds between readings")
    ap.add_argument("--autosave", type=int, default=60, help="autosave_interval")
    args = ap.parse_args(argv)
    hub = Hub("persistence true\nautosave_interval %d\n" % args.autosave)
    b = hub.broker
    c = persist.watch(b)
    sub = hub.client("127.0.0.1:1")
    sub.connect("display", clean_session=False)
    sub.subscribe(1, [(b"home/#", 1)])
    sensors = []
    for i in range(args.sensors):
        s = hub.client("127.0.0.1:%d" % (100 + i))
        s.connect("sensor-%02d" % i, clean_session=False)
        sensors.append(s)
    journal = Counter()
    saves = compactions = changes = 0
    naive = 0
    mid = 0
    seconds = int(args.hours * 3600)
    for t in range(seconds):
        for i, s in enumerate(sensors):
            if (t + i) % args.period == 0:
                mid = mid % 65535 + 1
                reading = b'{"t":%d.%d,"rh":%d}' % (18 + t % 7, t % 10, 40 + i)
                s.send(packets.encode_publish(b"home/room%02d/climate" % i, reading, 1,
                                              retain=True, mid=mid))
                assert [p.type for p in s.recv()] == [PUBACK]
                for p in sub.recv():
                    if p.type == PUBLISH:
                        sub.send(packets.encode_ack(PUBACK, p.mid))
                changes += 1
                whole = Counter()
                persist.save(b, whole.write, True, [])  # what the naive way writes now
                naive += whole.n
        hub.advance(1000)
        if c.due(b):
            compact = c.compact_now()
            before = journal.n
            persist.save(b, journal.write, compact, [])
            persist.saved(b, compact, journal.n - before)
            saves += 1
            compactions += compact
    state = Counter()
    persist.save(b, state.write, True, [])
    hours = seconds / 3600.0
    print("home-sensor load: %d sensors, a retained QoS 1 reading every %d s each, one"
          " persistent QoS 1 subscriber, autosave_interval %d; %.2g simulated hours"
          % (args.sensors, args.period, args.autosave, hours))
    print("  whole state: %d bytes; %d changes, %d saves (%d of them compactions)"
          % (state.n, changes, saves, compactions))
    print("  journal:            %9d bytes written per hour" % (journal.n / hours))
    print("  whole state per change (naive): %9d bytes per hour (%.0fx more)"
          % (naive / hours, naive / max(1, journal.n)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
