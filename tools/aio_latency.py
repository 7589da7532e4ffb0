"""Round-trip latency through the broker inside an application, with a second task doing 5 ms
of work every 10 ms beside it: the asyncio front (ports/aio.py) against the blocking loop
(Server.step), on CPython and the unix MicroPython. Measures and prints; never fails on a
figure.

    .venv/bin/python tools/aio_latency.py [--rate 1000] [--seconds 5]

One client subscribes to a topic and publishes to it at --rate QoS 0 messages per second,
each carrying the time it was sent; the round trip is the time until it comes back. The
second task's cadence is its turns and the gaps between their starts (10 ms when it keeps it).
The sender sleeps until each message is due: spinning, it would take a core from the broker.
"""
import argparse
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNTIMES = {"cpython": str(ROOT / ".venv" / "bin" / "python"),
            "micropython": str(ROOT / ".venv" / "bin" / "micropython")}


def _s(b):
    return struct.pack(">H", len(b)) + b


def _frame(b0, body):
    n = len(body)
    head = bytearray([b0])
    while True:
        d = n % 128
        n //= 128
        head.append(d | (0x80 if n else 0))
        if not n:
            break
    return bytes(head) + body


def _read_packets(sock, on_publish, stop):
    buf = b""
    while not stop.is_set():
        try:
            data = sock.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            return
        if not data:
            return
        buf += data
        while len(buf) >= 2:
            n, mult, i = 0, 1, 1
            while buf[i] & 0x80:
                n += (buf[i] & 0x7F) * mult
                mult *= 128
                i += 1
                if i >= len(buf):
                    break
            if i >= len(buf):
                break
            n += (buf[i] & 0x7F) * mult
            end = i + 1 + n
            if len(buf) < end:
                break
            if buf[0] >> 4 == 3:
                tl = struct.unpack_from(">H", buf, i + 1)[0]
                on_publish(buf[i + 3:i + 3 + tl], buf[i + 3 + tl:end])
            buf = buf[end:]


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def measure(runtime, mode, rate, seconds):
    port = _free_port()
    proc = subprocess.Popen([RUNTIMES[runtime], "tools/aio_latency_app.py", mode, str(port)],
                            cwd=str(ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        while "listening on" not in (proc.stderr.readline() or "listening on"):
            pass
        sock = socket.create_connection(("127.0.0.1", port), 5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(0.2)
        sock.sendall(_frame(0x10, _s(b"MQTT") + b"\x04\x02\x00\x3c" + _s(b"lat")))
        sock.sendall(_frame(0x82, b"\x00\x01" + _s(b"lat/t") + b"\x00"))
        sock.sendall(_frame(0x82, b"\x00\x02" + _s(b"app/cadence/reply") + b"\x00"))
        rtts = []
        replies = []
        stop = threading.Event()

        def on_publish(topic, payload):
            if topic == b"lat/t":
                rtts.append(time.perf_counter() - struct.unpack(">d", payload)[0])
            else:
                replies.append(payload.decode())
        reader = threading.Thread(target=_read_packets, args=(sock, on_publish, stop))
        reader.start()
        time.sleep(0.5)
        sock.sendall(_frame(0x30, _s(b"app/cadence")))  # the cadence from here on
        t0 = time.perf_counter()
        n = int(rate * seconds)
        for i in range(n):
            # asleep until it is due: a spinning sender would take a core from the broker
            # (the machine may have two) and the GIL from the reader
            wait = t0 + i / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            sock.sendall(_frame(0x30, _s(b"lat/t") + struct.pack(">d", time.perf_counter())))
        time.sleep(0.5)
        sock.sendall(_frame(0x30, _s(b"app/cadence")))
        deadline = time.time() + 5
        while len(replies) < 2 and time.time() < deadline:
            time.sleep(0.05)
        stop.set()
        reader.join()
        sock.close()
    finally:
        proc.kill()
        proc.wait()
    rtts.sort()
    got = len(rtts)
    p = (lambda q: rtts[min(got - 1, int(got * q))] * 1000) if got else (lambda q: float("nan"))
    cad = replies[-1].split() if len(replies) >= 2 else ["?"] * 4
    return "%-12s %-9s %6d/%-6d %8.2f %8.2f   %6s %5s %5s %5s" % (
        runtime, mode, got, n, p(0.5), p(0.99), cad[0], cad[1], cad[2], cad[3])


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--runtime", choices=sorted(RUNTIMES), action="append")
    args = ap.parse_args(argv)
    print("round trips of QoS 0 messages at %d/s for %g s; a second task doing 5 ms of work "
          "every 10 ms" % (args.rate, args.seconds))
    print("%-12s %-9s %13s %8s %8s   %6s %5s %5s %5s" % (
        "runtime", "loop", "returned/sent", "p50 ms", "p99 ms", "turns", "p50", "p99",
        "worst"))
    for runtime in args.runtime or ["cpython", "micropython"]:
        for mode in ("aio", "blocking"):
            print(measure(runtime, mode, args.rate, args.seconds), flush=True)
    print("(turns: the second task's, and the gaps between their starts in ms: 10 when it keeps "
          "its cadence)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
