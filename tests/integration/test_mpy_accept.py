"""The MicroPython port's accept path when a port call fails for one client after accept():
that client is let go, one line says why, and the next client is served (the CPython port's
counterpart is tests/plugin/test_server_sockets.py)."""
import socket
import subprocess

from conftest import REPO_ROOT, _our_micropython, free_port
from raw_mqtt import connect_packet

WAIT = 10.0


def test_a_client_whose_tls_wrap_fails_is_let_go_and_the_next_one_served(tmp_path):
    port = free_port()
    conf = tmp_path / "broker.conf"
    conf.write_text("listener %d 127.0.0.1\nallow_anonymous true\n" % port)
    proc = subprocess.Popen([_our_micropython(), "-X", "heapsize=512K",
                             "tests/integration/mpy_accept_app.py", str(conf)],
                            cwd=str(REPO_ROOT), stderr=subprocess.PIPE, text=True)
    started = []
    try:
        while not started or not ("listening on" in started[-1] or started[-1] == ""):
            started.append(proc.stderr.readline())
        assert "listening on" in started[-1], "".join(started)
        first = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        assert first.recv(4) == b""  # closed: its TLS layer could not be made
        first.close()
        second = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        second.sendall(connect_packet("second"))
        assert second.recv(4) == b"\x20\x02\x00\x00"  # CONNACK, accepted
        second.close()
        assert proc.poll() is None  # still serving
    finally:
        proc.terminate()
        log = proc.communicate(timeout=WAIT)[1]
    lines = log.splitlines()
    assert [m for m in lines if m.startswith("Error accepting")] \
        == ["Error accepting a connection: SSL - Memory allocation failed."], log
    assert any(m.startswith("New connection from 127.0.0.1:") for m in lines), log
    assert any(" as second " in m for m in lines), log
