"""The brokers `make bench` compares: how to start one on a free port, pinned to a core, and stop it.

Each broker gets the same small configuration: a listener on 127.0.0.1, anonymous clients, and no
connection limit (mosquitto's `max_connections -1`; ours store -1 as 10000, far above the 1,000
clients of the largest scenario). Every other limit keeps its default, and the defaults are the
same in the three: 20 QoS 1/2 messages in flight and 1,000 queued per client, no packet size
limit, $SYS every 10 seconds.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.join(REPO, ".venv", "bin")
BUILD = os.path.join(REPO, "build", "bench")
HERE = os.path.dirname(os.path.abspath(__file__))
RELAY_MYPYC = os.path.join(BUILD, "relay-mypyc")
MPY_HEAP = os.environ.get("BENCH_MPY_HEAP") or "256K"  # the heap; BENCH_MPY_HEAP overrides
READY_TIMEOUT = 15.0

KINDS = ("mosquitto", "cpython", "cpython-pure", "micropython", "amqtt")
LABELS = {
    "mosquitto": "mosquitto",
    "cpython": "ours, CPython",  # the compiled core when make setup built it (tools/mypyc_build.py)
    "cpython-pure": "ours, CPython (PURE=1)",
    "micropython": "ours, MicroPython",
    "amqtt": "amqtt",
}
_OUR_CONF = "listener %d 127.0.0.1\nallow_anonymous true\nmax_connections -1\n"
_AMQTT_CONF = """listeners:
  default:
    type: tcp
    bind: 127.0.0.1:%d
    max_connections: 0
auth:
  allow-anonymous: true
  plugins: [auth_anonymous]
topic-check:
  enabled: false
"""


class BrokerError(Exception):
    pass


def find_mosquitto():
    """The mosquitto daemon (Debian puts it in /usr/sbin, often not on PATH), or None."""
    path = os.pathsep.join([os.environ.get("PATH", os.defpath), "/usr/sbin", "/usr/local/sbin"])
    return shutil.which("mosquitto", path=path)


def install_mosquitto():
    """apt-get install mosquitto when running as root on Debian; whether it is there now."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return False
    print("installing mosquitto (apt-get)", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "mosquitto"],
                   env=env)
    # the package may start a system broker on 1883; ours run on their own ports, so leave it
    return find_mosquitto() is not None


def amqtt_bin():
    return os.path.join(BUILD, "amqtt-venv", "bin", "amqtt")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cores():
    """(broker core, generator core) to pin to, or None on a single-core machine."""
    try:
        avail = sorted(os.sched_getaffinity(0))
    except AttributeError:
        return None
    if len(avail) < 2 or shutil.which("taskset") is None:
        return None
    return avail[0], avail[1]


def pinned(argv, core):
    return argv if core is None else ["taskset", "-c", str(core)] + argv


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def command(kind, port, workdir, heap=None):
    """(argv, stop signal, ready test) for one broker listening on 127.0.0.1:port (heap: the
    MicroPython broker's -X heapsize, MPY_HEAP when None)."""
    if kind in ("cpython", "cpython-pure", "micropython"):
        conf = os.path.join(workdir, "broker.conf")
        _write(conf, _OUR_CONF % port)
        if kind != "micropython":
            argv = [os.path.join(VENV_BIN, "python"), "-m", "broker", "-c", conf]
            if kind == "cpython-pure":
                argv = ["env", "PURE=1"] + argv  # env execs the broker: the same process
            return argv, signal.SIGTERM, "log"
        argv = [os.path.join(VENV_BIN, "micropython"), "-X", "heapsize=" + (heap or MPY_HEAP),
                "-m", "broker", "-c", conf]
        return argv, signal.SIGINT, "log"
    if kind == "mosquitto":
        conf = os.path.join(workdir, "mosquitto.conf")
        _write(conf, "listener %d 127.0.0.1\nallow_anonymous true\nmax_connections -1\n" % port)
        exe = find_mosquitto()
        if exe is None:
            raise BrokerError("mosquitto is not installed (apt-get install mosquitto)")
        return [exe, "-c", conf], signal.SIGTERM, "tcp"
    if kind == "amqtt":
        conf = os.path.join(workdir, "amqtt.yaml")
        _write(conf, _AMQTT_CONF % port)
        return [amqtt_bin(), "-c", conf], signal.SIGTERM, "tcp"
    if kind == "relay":  # tools/bench/floor.py's yardstick, interpreted
        return [os.path.join(VENV_BIN, "python"), os.path.join(HERE, "relay.py"),
                str(port)], signal.SIGTERM, "tcp"
    if kind == "relay-mypyc":  # the same, compiled by floor.py into RELAY_MYPYC
        code = ("import signal, sys; sys.path.insert(0, %r); import relay; "
                "signal.signal(signal.SIGTERM, relay._stop); relay.serve(%d)" % (RELAY_MYPYC, port))
        return [os.path.join(VENV_BIN, "python"), "-c", code], signal.SIGTERM, "tcp"
    raise BrokerError("unknown broker %r" % kind)


class Running:
    """One broker process; `with Running(kind, workdir, core) as b:` gives b.port and b.pid."""

    def __init__(self, kind, workdir, core, heap=None):
        self.kind = kind
        self.port = free_port()
        self.log_path = os.path.join(workdir, "%s-%d.log" % (kind, self.port))
        argv, self.stop_signal, ready = command(kind, self.port, workdir, heap)
        self.log = open(self.log_path, "w+")
        # ours are started from the repository root, as the launch contract says
        self.proc = subprocess.Popen(pinned(argv, core), cwd=REPO, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid  # taskset execs the broker: same process
        try:
            self._wait_ready(ready)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, how):
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrokerError("%s exited at start-up (%d): %s"
                                  % (self.kind, self.proc.returncode, self.tail()))
            if how == "log":
                if "listening on" in self.tail():
                    return
            else:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                    return
                except OSError:
                    pass
            time.sleep(0.02)
        raise BrokerError("%s not ready after %.0f s: %s" % (self.kind, READY_TIMEOUT, self.tail()))

    def alive(self):
        return self.proc.poll() is None

    def tail(self, n=2000):
        with open(self.log_path, errors="replace") as f:
            text = f.read()
        return text[-n:]

    def problems(self, n=3):
        """The broker's last n log lines that are not routine connection messages, on one line."""
        routine = ("New connection", "New client", "disconnected", "closed its connection",
                   "listening on", "starting", "terminating", "Opening ipv", "mosquitto version",
                   "Config loaded")
        lines = [ln.strip() for ln in self.tail(20000).splitlines()
                 if ln.strip() and not any(w in ln for w in routine)]
        return " | ".join(lines[-n:]) or "nothing in its log"

    def stop(self):
        """Stop the broker; returns its exit code (-9 when it had to be killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.log.close()
                return -9
        self.log.close()
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _first_line(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, cwd=REPO)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def version(kind):
    if kind == "mosquitto":
        exe = find_mosquitto()
        return _first_line([exe, "-h"]) if exe else "not installed"
    if kind in ("cpython", "cpython-pure"):
        env = "PURE=1" if kind == "cpython-pure" else "PURE="
        return _first_line(["env", env, os.path.join(VENV_BIN, "python"), "-c",
                            "import sys, broker; from ports.cpython import compiled; "
                            "print('pico-broker', broker.VERSION, 'on CPython', "
                            "sys.version.split()[0], compiled.build)"])
    if kind == "micropython":
        return _first_line([os.path.join(VENV_BIN, "micropython"), "-c",
                            "import sys, broker; print('pico-broker', broker.VERSION, "
                            "'on MicroPython', sys.implementation.version)"])
    if kind == "amqtt":
        return _first_line([os.path.join(BUILD, "amqtt-venv", "bin", "python"), "-c",
                            "import importlib.metadata as m; print('amqtt', m.version('amqtt'))"])
    return "unknown"


def ensure_amqtt():
    """amqtt in its own virtualenv under build/ (its pinned dependencies stay out of .venv)."""
    if os.path.exists(amqtt_bin()):
        return
    venv = os.path.join(BUILD, "amqtt-venv")
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    subprocess.run([os.path.join(venv, "bin", "python"), "-m", "pip", "install", "-q", "amqtt"],
                   check=True)
