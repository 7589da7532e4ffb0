"""Start-up and stop time of the in-process test broker (ports.cpython.testing.running), side by side
with the usual alternative: a mosquitto process started per test.

    .venv/bin/python tools/bench_startup.py [-n RUNS]

A measurement, not a test: it prints a table and fails only when a broker cannot start at all.
For each of RUNS starts it measures

    connect   from calling running() to a TCP connect that succeeds
    CONNACK   from calling running() to the CONNACK of a first client (the loop is serving)
    stop      leaving the with block: every connection closed, the thread joined

and prints the median and the 90th percentile. `first start` is one run in a fresh interpreter,
imports included (what the first test of a session pays). mosquitto, when installed, is started
as `mosquitto -p PORT` and polled with a TCP connect every millisecond until it accepts; stopped
with SIGTERM and waited for.
"""
import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

CONNECT = bytes([0x10, 12, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 60, 0, 0])
CONNACK = bytes([0x20, 2, 0, 0])


def ms(seconds: float) -> float:
    return seconds * 1000.0


def connack(sock: socket.socket) -> None:
    sock.sendall(CONNECT)
    got = b""
    while len(got) < 4:
        chunk = sock.recv(4 - len(got))
        if not chunk:
            raise RuntimeError("the broker closed the connection before CONNACK")
        got += chunk
    if got != CONNACK:
        raise RuntimeError("unexpected CONNACK %r" % got)


def one_in_process() -> "tuple[float, float, float]":
    from ports.cpython.testing import running
    t0 = time.perf_counter()
    with running() as b:
        sock = socket.create_connection((b.host, b.port), timeout=5)
        t1 = time.perf_counter()
        connack(sock)
        t2 = time.perf_counter()
        t3 = time.perf_counter()
    t4 = time.perf_counter()
    sock.close()
    return ms(t1 - t0), ms(t2 - t0), ms(t4 - t3)


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def one_mosquitto(exe: str) -> "tuple[float, float, float]":
    port = free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen([exe, "-p", str(port)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = t0 + 10.0
    sock = None
    try:
        while sock is None:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            except OSError:
                if proc.poll() is not None or time.perf_counter() > deadline:
                    raise RuntimeError("mosquitto did not start on port %d" % port)
                time.sleep(0.001)
        t1 = time.perf_counter()
        connack(sock)
        t2 = time.perf_counter()
    finally:
        t3 = time.perf_counter()
        proc.terminate()
        proc.wait(10)
        t4 = time.perf_counter()
        if sock is not None:
            sock.close()
    return ms(t1 - t0), ms(t2 - t0), ms(t4 - t3)


def first_start() -> float:
    """One running() in a fresh interpreter, imports included (ms)."""
    code = ("import time, socket, sys; sys.path.insert(0, %r); t0 = time.perf_counter()\n"
            "from ports.cpython.testing import running\n"
            "with running() as b:\n"
            "    socket.create_connection((b.host, b.port)).close()\n"
            "    print((time.perf_counter() - t0) * 1000)\n" % ROOT)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, cwd=ROOT).stdout
    return float(out.strip())


def p90(values: "list[float]") -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]


def row(name: str, samples: "list[tuple[float, float, float]]") -> str:
    cols = []
    for i in range(3):
        values = [s[i] for s in samples]
        cols.append("%8.2f %8.2f" % (statistics.median(values), p90(values)))
    return "%-22s %s" % (name, "   ".join(cols))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", "--runs", type=int, default=50, help="starts per broker (default 50)")
    ap.add_argument("--no-mosquitto", action="store_true", help="skip the reference broker")
    args = ap.parse_args()

    print("start-up and stop, milliseconds, %d runs each (median, p90)" % args.runs)
    print("%-22s %-17s   %-17s   %-17s" % ("", "  to TCP connect", "   to CONNACK", "     stop"))
    print("%-22s %s" % ("", "   ".join(["  median      p90"] * 3)))

    one_in_process()  # imports and first-use costs, reported below as "first start"
    samples = [one_in_process() for _ in range(args.runs)]
    print(row("running() in-process", samples))

    exe = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)),
        None)
    if exe is not None and not args.no_mosquitto:
        ref = [one_mosquitto(exe) for _ in range(args.runs)]
        print(row("mosquitto process", ref))
    elif not args.no_mosquitto:
        print("%-22s not installed (apt-get install mosquitto)" % "mosquitto process")

    firsts = [first_start() for _ in range(5)]
    print("first start in a fresh interpreter (imports included), to TCP connect: median %.1f ms"
          " over %d" % (statistics.median(firsts), len(firsts)))
    target = statistics.median(s[0] for s in samples)
    print("target: start-up to accepting connections under 20 ms: %s (median %.2f ms)"
          % ("met" if target < 20.0 else "NOT met", target))
    return 0


if __name__ == "__main__":
    sys.exit(main())
