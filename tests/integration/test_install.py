"""pip install (a built wheel) gives the pico-broker command: mosquitto's -c, -p, -v and -d,
from any directory. Built offline in a throwaway venv on Debian's python3 with its setuptools
and wheel (python3-venv, python3-setuptools, python3-wheel)."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import time

import pytest

from conftest import REPO_ROOT, free_port, require_peer
from raw_mqtt import RawClient

pytestmark = [pytest.mark.kinds("cpython"), pytest.mark.own_broker]

SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.fixture(scope="module")
def command(tmp_path_factory):
    folder = tmp_path_factory.mktemp("install")
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import setuptools, wheel, venv"],
                           capture_output=True)
    if probe.returncode:
        why = "%s lacks setuptools or wheel: apt-get install python3-venv python3-setuptools" \
              " python3-wheel" % SYSTEM_PYTHON
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    venv = folder / "venv"
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run(pip + ["wheel", "--no-deps", "--no-build-isolation", "-w",
                          str(folder / "wheels"), str(REPO_ROOT)], check=True, timeout=300,
                   cwd=str(folder))
    wheels = list((folder / "wheels").glob("pico_broker-*.whl"))
    assert len(wheels) == 1, wheels
    subprocess.run(pip + ["install", "--no-deps", str(wheels[0])], check=True, timeout=300)
    return str(venv / "bin" / "pico-broker"), folder


def test_pico_broker_command(command):
    exe, folder = command
    conf = folder / "broker.conf"
    port = free_port()
    conf.write_text("listener %d 127.0.0.1\nallow_anonymous true\n" % port)
    help_text = subprocess.run([exe, "-h"], capture_output=True, text=True, cwd="/").stderr
    assert "-d        run in the background" in help_text, help_text
    p = subprocess.Popen([exe, "-c", str(conf), "-v"], cwd="/", stderr=subprocess.PIPE,
                         text=True)
    try:
        line = p.stderr.readline()
        while "listening on" not in line:
            assert line, "exited"
            line = p.stderr.readline()
        assert line.strip().endswith("listening on 127.0.0.1:%d" % port), line
        c = RawClient("127.0.0.1", port)
        assert c.connect("installed").return_code == 0
    finally:
        p.terminate()
        p.wait(10)


def test_daemonize_with_pid_file(command):
    exe, folder = command
    conf = folder / "daemon.conf"
    pid_file = folder / "broker.pid"
    conf.write_text("listener 1883 127.0.0.1\nallow_anonymous true\npid_file %s\n" % pid_file)
    port = free_port()
    done = subprocess.run([exe, "-c", str(conf), "-p", str(port), "-d"], cwd="/",
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "listening on 127.0.0.1:%d" % port in done.stderr, done
    deadline = time.monotonic() + 10
    while not pid_file.exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    pid = int(pid_file.read_text())
    try:
        c = RawClient("127.0.0.1", port)
        assert c.connect("daemon").return_code == 0
    finally:
        os.kill(pid, signal.SIGTERM)
    while pid_file.exists():  # removed as it stops
        assert time.monotonic() < deadline + 10
        time.sleep(0.05)


# The service files of tools/service, with the paths of this test in place of the installed
# ones: the unit is what systemd would load, the logrotate snippet what logrotate would run.

SERVICE = REPO_ROOT / "tools" / "service"


def _installed(text, pairs):
    for old, new in pairs:
        assert old in text, old
        text = text.replace(old, new)
    return text


def test_systemd_unit_loads_with_the_installed_command(command, tmp_path):
    exe, folder = command
    unit = tmp_path / "pico-broker.service"
    unit.write_text(_installed((SERVICE / "pico-broker.service").read_text(), [
        ("/usr/local/bin/pico-broker -c /etc/mosquitto/mosquitto.conf",
         "%s -c %s" % (exe, folder / "broker.conf"))]))
    r = subprocess.run([require_peer("systemd-analyze"), "verify", str(unit)],
                       capture_output=True, text=True, timeout=60)
    # an unknown key or section is only a warning: the unit must load without any
    assert (r.returncode, r.stderr) == (0, ""), r


def test_logrotate_snippet_has_the_broker_reopen_its_log(command, tmp_path):
    exe, folder = command
    log, pid = tmp_path / "broker.log", tmp_path / "broker.pid"
    port = free_port()
    conf = tmp_path / "broker.conf"
    conf.write_text("listener %d 127.0.0.1\nallow_anonymous true\nlog_dest file %s\n"
                    "pid_file %s\n" % (port, log, pid))
    rotate = tmp_path / "logrotate.conf"
    rotate.write_text(_installed((SERVICE / "pico-broker.logrotate").read_text(), [
        ("/var/log/mosquitto/mosquitto.log", str(log)),
        ("/run/mosquitto/mosquitto.pid", str(pid))]))
    p = subprocess.Popen([exe, "-c", str(conf)], cwd="/", stderr=subprocess.DEVNULL)
    try:
        _wait_for(pid.exists)  # written once the broker listens
        assert RawClient("127.0.0.1", port).connect("before").return_code == 0
        _wait_for(lambda: "as before" in log.read_text())
        r = subprocess.run([require_peer("logrotate"), "-f", "-s", str(tmp_path / "state"),
                            str(rotate)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r
        rotated = tmp_path / "broker.log.1.gz"
        assert rotated.exists(), sorted(os.listdir(tmp_path))
        assert b"as before" in gzip.decompress(rotated.read_bytes())
        # postrotate's SIGHUP: the broker writes on into a new file of the same name
        assert RawClient("127.0.0.1", port).connect("after").return_code == 0
        _wait_for(lambda: log.exists() and "as after" in log.read_text())
        assert "as before" not in log.read_text()
    finally:
        p.terminate()
        p.wait(10)


def _wait_for(ok, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not ok():
        assert time.monotonic() < deadline, "not within %s s" % seconds
        time.sleep(0.05)
