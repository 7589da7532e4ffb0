"""make flash BOARD=sim end to end: tools/flash.py compiles, copies with mpremote to the
virtual board (tools/sim.py, a pty with MicroPython behind it), resets it and waits for the
broker; then real clients on the host talk to the broker running on the board."""
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from peers import require_peer  # noqa: E402
PY = sys.executable
FLASH = ROOT / "tools" / "flash.py"
SIM = ROOT / "tools" / "sim.py"
MPREMOTE = ROOT / ".venv" / "bin" / "mpremote"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Sim:
    """A virtual board in its own directory; `romfs`: its firmware's ROMFS partition size
    (SIM_ROMFS), "0" for firmware without one, the board these tests flash."""
    def __init__(self, tmp, romfs="0"):
        self.romfs = romfs
        self.dir = tmp / "sim"
        self.build = tmp / "build"
        self.port = free_port()
        self.pids = set()

    def flash(self, *extra):
        cmd = [PY, str(FLASH), "sim", "--sim-dir", str(self.dir), "--build-dir", str(self.build),
               "--sim-port", str(self.port)] + list(extra)
        env = {k: v for k, v in os.environ.items()
               if k not in ("PORT", "SIM_PORT", "SIM_DIR", "ROMFS", "APP")}
        env["SIM_ROMFS"] = self.romfs
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)
        self.remember()
        return r

    def remember(self):
        import json
        try:
            state = json.loads((self.dir / "sim.json").read_text())
        except (OSError, ValueError):
            return
        self.pids.add(state["pid"])
        if state.get("child"):
            self.pids.add(state["child"])
        self.device = state["device"]

    def mpremote(self, *args, timeout=30):
        return subprocess.run([str(MPREMOTE), "connect", self.device] + list(args),
                              capture_output=True, text=True, timeout=timeout)

    def stop(self):
        subprocess.run([PY, str(SIM), "stop", "--dir", str(self.dir)], capture_output=True,
                       timeout=30)

    def shut_down(self):
        """Stop the board; the processes that outlived it, killed (an empty list is right)."""
        self.remember()
        self.stop()
        deadline = time.monotonic() + 5
        while any(alive(p) for p in self.pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = [p for p in self.pids if alive(p)]
        for p in left:
            os.kill(p, signal.SIGKILL)
        return left


def flashed(folder, *args):
    """A fixture's body: a virtual board in folder, flashed with make flash's args, yielded,
    then stopped with nothing of it left running."""
    board = Sim(folder)
    r = board.flash(*args)
    try:
        assert r.returncode == 0, r.stdout + r.stderr
        board.first_output = r.stdout
        yield board
    finally:
        left = board.shut_down()
        assert not left, "processes left running after sim stop: %s" % left


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    yield from flashed(tmp_path_factory.mktemp("flash-sim"))


def wait_connectable(port, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("nothing listens on 127.0.0.1:%d" % port)


def test_flash_goes_through_every_step_and_prints_the_address(sim):
    out = sim.first_output
    assert "mpy-cross -march=x64" in out
    assert re.search(r"(\d+) of \1 files changed, copying", out)  # a fresh board gets all
    assert "  broker/engine.mpy (" in out and "  main.py (" in out
    assert "board| MPY: soft reboot" in out
    assert re.search(r"board\| .*listening on 127\.0\.0\.1:%d" % sim.port, out)
    assert "broker ready at 127.0.0.1:%d" % sim.port in out
    # the files really are on the board's flash, compiled for the board
    flash = sim.dir / "flash"
    assert (flash / "main.py").is_file() and (flash / "broker.conf").is_file()
    assert (flash / "broker" / "engine.mpy").read_bytes()[:2] == b"M\x06"
    assert not (flash / "broker" / "engine.py").exists()


def paho_client(client_id):
    connacks = queue.Queue()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
    client.on_connect = lambda c, u, f, reason, p: connacks.put(reason)
    return client, connacks


def paho_round_trip(port, sub_id, pub_id, filt, topic, payload):
    """A paho subscriber on filt (QoS 1) receives what a paho publisher sends to topic (QoS 1)."""
    received = queue.Queue()
    subscribed = queue.Queue()
    sub, sub_ok = paho_client(sub_id)
    pub, pub_ok = paho_client(pub_id)
    sub.on_message = lambda c, u, msg: received.put(msg)
    sub.on_subscribe = lambda c, u, mid, codes, p: subscribed.put(codes)
    sub.connect("127.0.0.1", port)
    pub.connect("127.0.0.1", port)
    sub.loop_start()
    pub.loop_start()
    try:
        assert not sub_ok.get(timeout=5).is_failure
        assert not pub_ok.get(timeout=5).is_failure
        sub.subscribe(filt, qos=1)
        assert [c.value for c in subscribed.get(timeout=5)] == [1]
        pub.publish(topic, payload, qos=1).wait_for_publish(timeout=5)
        msg = received.get(timeout=5)
    finally:
        for c in (sub, pub):
            c.disconnect()
            c.loop_stop()
    assert (msg.topic, msg.payload, msg.qos) == (topic, payload, 1)


def mosquitto_round_trip(port, topic, filt, message):
    """mosquitto_pub retains message on topic; a later mosquitto_sub on filt gets it back."""
    mosquitto_pub = require_peer("mosquitto_pub")
    mosquitto_sub = require_peer("mosquitto_sub")
    r = subprocess.run([mosquitto_pub, "-h", "127.0.0.1", "-p", str(port), "-t", topic,
                        "-m", message, "-r", "-q", "1"], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([mosquitto_sub, "-h", "127.0.0.1", "-p", str(port), "-t", filt, "-v",
                        "-C", "1", "-W", "5"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "%s %s" % (topic, message)


def test_paho_publish_and_subscribe_through_the_board(sim):
    paho_round_trip(sim.port, "display", "thermometer", "home/+/temperature",
                    "home/kitchen/temperature", b"21.5")


def test_mosquitto_clients_through_the_board(sim):
    # the retained message comes back to a new subscriber, from the broker on the board
    mosquitto_round_trip(sim.port, "board/state", "board/#", "on")


def test_reflash_copies_nothing_when_nothing_changed(sim):
    r = sim.flash()
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 compiled now" in r.stdout
    assert "nothing to copy" in r.stdout
    assert "files changed" not in r.stdout
    assert "broker ready at 127.0.0.1:%d" % sim.port in r.stdout
    wait_connectable(sim.port)


def test_reflash_copies_only_the_file_that_differs(sim):
    on_board = sim.dir / "flash" / "main.py"
    on_board.write_text(on_board.read_text() + "# changed on the board\n")
    r = sim.flash()
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"1 of \d+ files changed, copying", r.stdout), r.stdout
    copied = [line.strip() for line in r.stdout.splitlines() if line.startswith("  ")
              and not line.startswith("  board|")]
    assert len(copied) == 1 and copied[0].startswith("main.py ("), copied
    assert "# changed on the board" not in on_board.read_text()
    wait_connectable(sim.port)


def test_mpremote_sees_a_board(sim):
    """The virtual board answers mpremote's own commands as a board does: exec (Ctrl-C stops
    the broker first), ls, sha256sum, and a hard reset after which main.py starts the broker
    again."""
    r = sim.mpremote("exec", "import os, sys; print(os.getcwd(), sys.path); print(1 + 1)")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "/ ['', '.frozen', '/lib']" in r.stdout and "2" in r.stdout
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", sim.port), 0.5).close()  # Ctrl-C stopped it
    r = sim.mpremote("fs", "ls", ":broker", "+", "fs", "sha256sum", ":main.py")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "engine.mpy" in r.stdout
    import hashlib
    local = hashlib.sha256((sim.build / "sim" / "files" / "main.py").read_bytes()).hexdigest()
    assert local in r.stdout
    r = sim.mpremote("exec", "raise ValueError('on the board')")
    assert r.returncode == 1 and "ValueError: on the board" in r.stdout + r.stderr
    r = sim.mpremote("reset")
    assert r.returncode == 0, r.stdout + r.stderr
    wait_connectable(sim.port)


def test_mip_installs_the_package_on_the_board(sim):
    r = sim.mpremote("mip", "install", "--target", "/lib", str(ROOT / "package.json"),
                     timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    # the installed sources, alone on sys.path, import and parse the board's configuration
    r = sim.mpremote("exec", "import sys\nsys.path[:] = ['/lib']\n"
                     "from ports.micropython.launch import run\nimport boardmain\n"
                     "from broker import cli\nfrom ports.readfile import read_file\n"
                     "c = cli.parse_args(['-c', '/broker.conf'], read_file)\n"
                     "print('max_connections', c.max_connections, cli.__file__)")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "max_connections 8 /lib/broker/cli.py" in r.stdout
