"""Listeners on IPv6 addresses (issue 15, item 17): `listener PORT ::1` listens on IPv6 only,
`listener PORT ::` on IPv6 and IPv4 (dual stack); peers are logged as mosquitto logs them
("::1:50000", an IPv4 client of a dual-stack listener as "::ffff:127.0.0.1:50000"), listeners
in brackets ("listening on [::1]:18849"). tools/wasm32/serve.mjs listens on 127.0.0.1 only, so
the wasm32 kind skips these (conftest.WASM32_LACKS, "listener IPv6").
"""

from __future__ import annotations

import re
import signal
import socket

import pytest

from board import board_config_lines
from conftest import BrokerKind, _launch_contract, _our_micropython
from raw_mqtt import CONNACK, connect_packet

pytestmark = [pytest.mark.integration]

WAIT = 5.0


def _free_port6():
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
        s.bind(("::1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ipv6():
    """Skip where this machine has no IPv6 loopback (a kernel or container without it): not a
    missing program, so not a failure under CI=true either."""
    if not socket.has_ipv6:
        pytest.skip("this Python has no IPv6")
    try:
        _free_port6()
    except OSError as e:
        pytest.skip("no IPv6 loopback here (::1): %s" % e)


def _connack(host, port, family):
    """The CONNACK return code for a CONNECT sent to host:port, or the OSError's errno."""
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(WAIT)
    try:
        s.connect((host, port))
        s.sendall(connect_packet("v6-%d" % port))
        head = s.recv(4)
    except OSError as e:
        return e.errno
    finally:
        s.close()
    assert len(head) == 4 and head[0] == CONNACK << 4, head
    return head[3]


@pytest.mark.own_broker
def test_listeners_on_ipv6_loopback_and_on_every_address(broker_factory, ipv6):
    only6 = _free_port6()
    dual = _free_port6()
    b = broker_factory(["listener %d ::1" % only6, "listener %d ::" % dual])
    assert _connack("::1", only6, socket.AF_INET6) == 0
    assert _connack("::1", dual, socket.AF_INET6) == 0
    assert _connack("127.0.0.1", dual, socket.AF_INET) == 0  # dual stack
    assert _connack("127.0.0.1", only6, socket.AF_INET) != 0  # refused: ::1 is IPv6 only
    log = b.wait_log(lambda text: text.count("New connection from") >= 3)
    assert "listening on [::1]:%d" % only6 in log, log
    assert "listening on [::]:%d" % dual in log, log
    assert "listening on 127.0.0.1:%d" % b.port in log, log
    assert re.search(r"New connection from ::1:\d+ on port %d\." % only6, log), log
    assert re.search(r"New connection from ::ffff:127\.0\.0\.1:\d+ on port %d\." % dual, log), log
    assert re.search(r"New client connected from ::1:\d+ as v6-%d " % only6, log), log


# A MicroPython without IPv6 (a board built without it), on the unix port: the broker started
# as -m broker starts it, by a script that first hides socket.AF_INET6.
_NO_IPV6 = """\
import sys
import socket


class _Socket:
    pass


shim = _Socket()
for name in dir(socket):
    if name != "AF_INET6" and not name.startswith("__"):
        setattr(shim, name, getattr(socket, name))
sys.modules["socket"] = shim
sys.path.insert(0, "")
from ports.micropython.launch import main
sys.exit(main(sys.argv[1:]))
"""


def _micropython_without_ipv6(tmp_path, heap):
    script = tmp_path / "no_ipv6.py"
    script.write_text(_NO_IPV6)
    return BrokerKind(
        "micropython",
        _launch_contract(lambda: [_our_micropython(), "-X", "heapsize=%s" % heap, str(script)]),
        ready="log", always_config=True, base_config=board_config_lines,
        stop_signal=signal.SIGINT, heap=heap,
    )


@pytest.mark.own_broker
@pytest.mark.kinds("micropython")
def test_micropython_without_ipv6_says_so_in_one_line(broker_factory, broker_kind, tmp_path):
    kind = _micropython_without_ipv6(tmp_path, broker_kind.heap)
    port = _free_port4()
    # "::": every address there is, which is IPv4's here: it listens there, and says why
    b = broker_factory(["listener %d ::" % port], kind=kind)
    assert _connack("127.0.0.1", port, socket.AF_INET) == 0
    log = b.log()
    notes = [line for line in log.splitlines() if "no IPv6" in line]
    assert len(notes) == 1, log
    assert notes[0].endswith("Listener [::]:%d: this MicroPython has no IPv6, listening on"
                             " IPv4 only." % port), log
    assert "listening on 0.0.0.0:%d" % port in log, log
    b.stop()
    # a given IPv6 address cannot be served: start-up stops, in one line
    port = _free_port4()
    b = broker_factory(["listener %d ::1" % port], kind=kind, wait=False)
    assert b.wait_exit() == 1
    errors = [line for line in b.log().splitlines() if line.startswith("Error")]
    assert errors == ["Error: cannot listen on [::1]:%d: this MicroPython has no IPv6" % port], \
        b.log()


def _free_port4():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
