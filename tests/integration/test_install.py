"""pip install (a built wheel) gives the pico-broker command: mosquitto's -c, -p, -v and -d,
from any directory. Built offline in a throwaway venv on Debian's python3 with its setuptools
and wheel (python3-venv, python3-setuptools, python3-wheel)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from conftest import REPO_ROOT, free_port
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
