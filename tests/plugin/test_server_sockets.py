"""The CPython port's accepted sockets: what each client's socket gets from its listener, driven
one loop turn at a time in this thread (ports.cpython.server.Server)."""
import socket

import pytest

from broker.config import load
from ports.cpython.server import Server
from ports.readfile import read_file


def _server(path):
    config = load(str(path), read_file)
    config.config_file = str(path)  # as `-c FILE` sets it: what SIGHUP reads again
    server = Server(config, lambda level, msg: None)
    server.bind()
    return server


def _accepted(server, client):
    """The broker's end of client's connection, after the turns that accept it."""
    for _ in range(20):
        server.step(50)
        for conn in server.conns.values():
            if conn.handle.getpeername() == client.getsockname():
                return conn.handle
    raise AssertionError("the broker did not accept the connection")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _nodelay(sock):
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


@pytest.mark.parametrize("first", [True, False])
def test_set_tcp_nodelay_reaches_each_client_and_follows_a_reload(tmp_path, first):
    # set_tcp_nodelay is set on the listener once, and the kernel hands it to every socket
    # accept() returns; a reload (SIGHUP) changes it for the clients that come after
    conf = tmp_path / "broker.conf"
    port = _free_port()
    text = "listener %d 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay %%s\n" % port
    conf.write_text(text % ("true" if first else "false"))
    server = _server(conf)
    clients = []
    try:
        clients.append(socket.create_connection(("127.0.0.1", port)))
        before = _accepted(server, clients[0])
        assert _nodelay(before) is first
        assert before.gettimeout() == 0.0  # non-blocking, as the loop needs

        conf.write_text(text % ("false" if first else "true"))
        server.reload()
        clients.append(socket.create_connection(("127.0.0.1", port)))
        after = _accepted(server, clients[1])
        assert _nodelay(after) is not first
        assert _nodelay(before) is first  # a client already connected keeps its socket's
        assert after.family == socket.AF_INET and after.type == socket.SOCK_STREAM
    finally:
        for c in clients:
            c.close()
        server.close()


def test_a_unix_listener_accepts_without_tcp_options(tmp_path):
    path = tmp_path / "broker.sock"
    conf = tmp_path / "broker.conf"
    conf.write_text("listener 0 %s\nallow_anonymous true\n" % path)
    server = _server(conf)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.connect(str(path))
        for _ in range(20):
            server.step(50)
            if server.conns:
                break
        (conn,) = server.conns.values()
        assert conn.handle.family == socket.AF_UNIX and conn.handle.gettimeout() == 0.0
    finally:
        client.close()
        server.close()
