"""log_dest on every runtime (ports/logdest.py, which both ports share): stdout, none, a file,
several at once, $SYS/broker/log/<level> topics published between turns of the loop, and
log_timestamp false; mosquitto's answers are the expectations."""

from __future__ import annotations

import time

import pytest

from raw_mqtt import PUBLISH


def _wait(predicate, what):
    deadline = time.monotonic() + 5
    while not predicate():
        assert time.monotonic() < deadline, what()
        time.sleep(0.05)


def test_stdout_and_topic(broker_factory, raw_client):
    b = broker_factory(["log_dest stdout", "log_dest topic", "log_type all",
                        "log_timestamp false"])
    sub = raw_client(b)
    sub.connect("watcher")
    assert sub.subscribe([("$SYS/broker/log/N", 0)]) == [0]
    other = raw_client(b)
    other.connect("newcomer")
    m = sub.expect(PUBLISH)
    while "newcomer" not in m.payload.decode():
        m = sub.expect(PUBLISH)
    assert m.topic == "$SYS/broker/log/N"
    b.stop()  # (mosquitto's stdout into a pipe is flushed when it ends)
    line = [x for x in b.stdout().splitlines() if "newcomer" in x][0]
    assert line.startswith("New client connected from "), line  # no time in front
    assert "newcomer" not in b.log()  # stderr is not a destination any more


@pytest.mark.kinds("cpython", "micropython", "mosquitto")  # serve.mjs: no files to write
def test_file_and_none(broker_factory, broker_kind, raw_client, tmp_path):
    path = tmp_path / "broker.log"
    lines = ["log_dest none", "log_dest file %s" % path, "log_type all"]
    if broker_kind.name == "mosquitto":
        lines.append("user root")  # as root it would run as mosquitto, who cannot write tmp
    b = broker_factory(lines)
    c = raw_client(b)
    c.connect("filed")
    _wait(lambda: path.exists() and "filed" in path.read_text(),
          lambda: path.read_text() if path.exists() else "no file")
    line = [x for x in path.read_text().splitlines() if "filed" in x][0]
    stamp, _, rest = line.partition(": ")
    assert stamp.isdigit() and abs(int(stamp) - time.time()) < 60, line
    assert "filed" not in b.log() and "filed" not in b.stdout()
