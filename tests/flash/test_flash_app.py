"""make flash BOARD=sim APP=sensorhub: the example application (boards/examples/sensorhub, the
broker inside an asyncio main.py) on the virtual board, driven with mosquitto_pub/sub: its
retained temperature, its LED on cmd/led, and the authenticate hook refusing unknown users."""
import subprocess
import time

import pytest

from peers import require_peer
from test_flash_sim import flashed

USER = ["-u", "phone", "-P", "change-me-too"]


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    yield from flashed(tmp_path_factory.mktemp("flash-app"), "--app", "sensorhub")


def sub(port, *args):
    return subprocess.run([require_peer("mosquitto_sub"), "-p", str(port), "-W", "10"]
                          + list(args), capture_output=True, text=True, timeout=20)


def pub(port, *args):
    return subprocess.run([require_peer("mosquitto_pub"), "-p", str(port)] + list(args),
                          capture_output=True, text=True, timeout=20)


def test_the_application_is_flashed_and_announces_the_broker(hub):
    out = hub.first_output
    assert "application boards/examples/sensorhub" in out
    assert "broker ready at 127.0.0.1:%d" % hub.port in out
    assert "sensorhub" in (hub.dir / "flash" / "main.py").read_text()


def test_the_temperature_is_retained(hub):
    r = sub(hub.port, *USER, "-t", "sensors/temperature", "-C", "1", "-v")
    assert r.returncode == 0, r.stderr
    topic, value = r.stdout.split()
    assert topic == "sensors/temperature" and 20.0 < float(value) < 22.0  # the stub's 21.2


def test_the_led_follows_cmd_led(hub):
    assert pub(hub.port, *USER, "-t", "cmd/led", "-m", "on", "-q", "1").returncode == 0
    r = sub(hub.port, *USER, "-t", "state/led", "-C", "1")
    assert r.stdout.strip() == "on", r.stderr
    assert pub(hub.port, *USER, "-t", "cmd/led", "-m", "off").returncode == 0
    deadline = time.monotonic() + 10
    while sub(hub.port, *USER, "-t", "state/led", "-C", "1").stdout.strip() != "off":
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_unknown_users_are_refused(hub):
    for who in ([], ["-u", "mallory", "-P", "x"], ["-u", "phone", "-P", "wrong"]):
        r = pub(hub.port, *who, "-t", "cmd/led", "-m", "on")
        assert r.returncode != 0
        assert "not authorised" in r.stderr.lower() or "not authorized" in r.stderr.lower(), r.stderr
