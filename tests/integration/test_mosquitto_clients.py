"""Round trips with the mosquitto command-line clients (mosquitto_pub / mosquitto_sub).

mosquitto_sub block-buffers its output when stdout is a pipe, so it runs on a pseudo-terminal:
each line (its -d debug lines and the -F formatted messages) arrives as soon as it is printed,
and the test publishes only after mosquitto_sub has printed "Subscribed", i.e. after its SUBACK.
"""

from __future__ import annotations

import os
import pty
import subprocess
import threading
import time

import pytest

from board import board_limit

pytestmark = pytest.mark.integration

WAIT = 5.0
FORMAT = "MSG|%t|%q|%r|%p"  # topic | qos | retain | payload


class LineProcess:
    """A subprocess whose stdout+stderr is a pty, collected line by line."""

    def __init__(self, argv):
        self.argv = argv
        master, slave = pty.openpty()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave,
                                     stderr=slave, close_fds=True)
        os.close(slave)
        self._master = master
        self._lines = []
        self._partial = b""
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        while True:
            try:
                chunk = os.read(self._master, 4096)
            except OSError:  # EIO once the child has gone
                chunk = b""
            with self._cond:
                if not chunk:
                    if self._partial:
                        self._lines.append(self._partial.decode("utf-8", "replace"))
                    self._partial = b""
                    self._cond.notify_all()
                    break
                data = self._partial + chunk
                *complete, self._partial = data.split(b"\n")
                self._lines.extend(x.rstrip(b"\r").decode("utf-8", "replace") for x in complete)
                self._cond.notify_all()
        os.close(self._master)

    def lines(self):
        with self._cond:
            return list(self._lines)

    def messages(self):
        return [line[len("MSG|"):] for line in self.lines() if line.startswith("MSG|")]

    def wait_line(self, prefix, timeout=WAIT):
        deadline = time.monotonic() + timeout
        with self._cond:
            while not any(line.startswith(prefix) for line in self._lines):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not self._thread.is_alive()):
                    raise AssertionError("no line starting %r within %.1fs from %r; output:\n%s"
                                         % (prefix, timeout, self.argv, "\n".join(self._lines)))
                self._cond.wait(min(remaining, 0.1))

    def wait(self, timeout=WAIT + 5):
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("%r still running after %.1fs; output:\n%s"
                                 % (self.argv, timeout, "\n".join(self.lines())))
        self._thread.join(timeout=2)
        return code

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._thread.join(timeout=2)


class PipeProcess:
    """A subprocess fed through a stdin pipe (mosquitto_pub -l)."""

    def __init__(self, proc):
        self.proc = proc

    def write_line(self, text):
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()

    def finish(self, timeout=WAIT + 5):
        """Close stdin (mosquitto_pub -l then exits) and return (exit code, output)."""
        try:
            out, _ = self.proc.communicate(timeout=timeout)  # closes stdin first
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError("%r still running after %.1fs" % (self.proc.args, timeout))
        return self.proc.returncode, out.decode("utf-8", "replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def clients(peer):
    """(sub, pub) starters bound to the broker; every process is killed at teardown."""
    started = []

    class Clients:
        def __init__(self):
            self.sub_path = peer("mosquitto_sub")
            self.pub_path = peer("mosquitto_pub")

        def sub(self, broker, *args):
            p = LineProcess([self.sub_path, "-h", broker.host, "-p", str(broker.port),
                             "-d", "-F", FORMAT] + list(args))
            started.append(p)
            return p

        def pub_stream(self, broker, *args):
            """mosquitto_pub with its stdin a pipe (for -l): write lines, then finish()."""
            p = subprocess.Popen([self.pub_path, "-h", broker.host, "-p", str(broker.port)]
                                 + list(args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT)
            started.append(PipeProcess(p))
            return started[-1]

        def pub(self, broker, *args, stdin_text=None):
            r = subprocess.run([self.pub_path, "-h", broker.host, "-p", str(broker.port)]
                               + list(args), input=stdin_text, capture_output=True, text=True,
                               timeout=WAIT + 5)
            assert r.returncode == 0, "mosquitto_pub %r failed (%d): %s%s" % (
                args, r.returncode, r.stdout, r.stderr)
            return r

    yield Clients()
    for p in started:
        p.stop()


def test_pub_sub_round_trip(broker, clients):
    sub = clients.sub(broker, "-C", "1", "-W", "5", "-t", "mc/t")
    sub.wait_line("Subscribed")
    clients.pub(broker, "-t", "mc/t", "-m", "hello")
    assert sub.wait() == 0
    assert sub.messages() == ["mc/t|0|0|hello"]


def test_qos2_round_trip(broker, clients):
    sub = clients.sub(broker, "-C", "1", "-W", "5", "-q", "2", "-t", "mc/q2")
    sub.wait_line("Subscribed")
    clients.pub(broker, "-q", "2", "-t", "mc/q2", "-m", "exactly once")
    assert sub.wait() == 0
    # [MQTT-3.8.4-6] QoS 2 published onto QoS 2 granted -> delivered at QoS 2
    assert sub.messages() == ["mc/q2|2|0|exactly once"]
    assert any("received PUBREL" in line for line in sub.lines())  # the QoS 2 flow ran


def test_retained_message_delivered_to_later_subscriber(broker, clients):
    clients.pub(broker, "-r", "-q", "1", "-t", "mc/r", "-m", "kept")
    sub = clients.sub(broker, "-C", "1", "-W", "5", "-q", "1", "-t", "mc/r")
    assert sub.wait() == 0
    # [MQTT-3.3.1-6] [MQTT-3.3.1-8] retained, sent on subscription with RETAIN 1
    assert sub.messages() == ["mc/r|1|1|kept"]


def test_retained_message_cleared_with_null_message(broker, clients):
    clients.pub(broker, "-r", "-t", "mc/rc", "-m", "short-lived")
    clients.pub(broker, "-r", "-t", "mc/rc", "-n")  # zero-length retained payload
    sub = clients.sub(broker, "-C", "1", "-W", "5", "-t", "mc/rc")
    sub.wait_line("Subscribed")
    clients.pub(broker, "-t", "mc/rc", "-m", "marker")
    assert sub.wait() == 0
    # [MQTT-3.3.1-10] [MQTT-3.3.1-11] nothing retained any more: the first message is live
    assert sub.messages() == ["mc/rc|0|0|marker"]


def test_lines_published_in_order(broker, clients):
    # The subscriber's session holds at most its in-flight window plus max_queued_messages
    # (16 on the board profile) and drops what does not fit, so the lines are fed to
    # mosquitto_pub's stdin with at most that many on their way at any time.
    n = 50
    window = board_limit("max_queued_messages")
    sub = clients.sub(broker, "-C", str(n), "-W", "10", "-q", "1", "-t", "mc/lines")
    sub.wait_line("Subscribed")
    pub = clients.pub_stream(broker, "-q", "1", "-t", "mc/lines", "-l")
    deadline = time.monotonic() + 10
    for i in range(n):
        while len(sub.messages()) <= i - window:
            assert time.monotonic() < deadline, "got %r" % sub.messages()
            time.sleep(0.005)
        pub.write_line("line %d" % i)
    assert sub.wait() == 0
    code, output = pub.finish()
    assert code == 0, output
    # [MQTT-4.6.0-6] delivered in the order published
    assert sub.messages() == ["mc/lines|1|0|line %d" % i for i in range(n)]


def test_will_published_when_client_killed(broker, clients):
    victim = clients.sub(broker, "-i", "mc-victim", "-t", "mc/ignored",
                         "--will-topic", "mc/will", "--will-payload", "bye",
                         "--will-qos", "1")
    victim.wait_line("Subscribed")
    watcher = clients.sub(broker, "-C", "1", "-W", "5", "-q", "1", "-t", "mc/will")
    watcher.wait_line("Subscribed")
    victim.proc.kill()  # SIGKILL: the socket closes without DISCONNECT
    victim.wait()
    assert watcher.wait() == 0
    # [MQTT-3.1.2-8] the will is published; QoS 1 [MQTT-3.1.2-14]; not retained [MQTT-3.1.2-16]
    assert watcher.messages() == ["mc/will|1|0|bye"]


def test_mqtt31_round_trip(broker, clients):
    # MQTT 3.1 limits client ids to 23 characters: give short ones explicitly
    sub = clients.sub(broker, "-V", "mqttv31", "-i", "v31-sub", "-C", "1", "-W", "5",
                      "-q", "1", "-t", "mc/v31")
    sub.wait_line("Subscribed")
    clients.pub(broker, "-V", "mqttv31", "-i", "v31-pub", "-q", "1", "-t", "mc/v31",
                "-m", "three-one")
    assert sub.wait() == 0
    assert sub.messages() == ["mc/v31|1|0|three-one"]
    assert any("received CONNACK (0)" in line for line in sub.lines())
