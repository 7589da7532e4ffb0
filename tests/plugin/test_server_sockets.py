"""The CPython port's accepted sockets: what each client's socket gets from its listener, driven
one loop turn at a time in this thread (ports.cpython.server.Server)."""
import os
import socket

import pytest

from ports.cpython import server as server_module
from ports.cpython.server import Server
from ports.cpython.testing import make_config


def _server(path):
    config = make_config(path)  # with no listener in the file: 127.0.0.1, a port the OS picks
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


def _nodelay(sock):
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


@pytest.mark.parametrize("first", [True, False])
def test_set_tcp_nodelay_reaches_each_client_and_follows_a_reload(tmp_path, first):
    # set_tcp_nodelay is set on the listener once, and the kernel hands it to every socket
    # accept() returns; a reload (SIGHUP) changes it for the clients that come after
    conf = tmp_path / "broker.conf"
    text = "allow_anonymous true\nset_tcp_nodelay %s\n"
    conf.write_text(text % ("true" if first else "false"))
    server = _server(conf)
    port = int(server.addresses[0].rsplit(":", 1)[1])
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
        accepted = _accepted(server, client)
        assert accepted.family == socket.AF_UNIX and accepted.gettimeout() == 0.0
    finally:
        client.close()
        server.close()


class _RefusingPoller:
    """select.epoll, whose register() fails once (ENOSPC: fs.epoll.max_user_watches)."""

    def __init__(self, real):
        self.real = real
        self.refused = []

    def register(self, fd, mask):
        if not self.refused:
            self.refused.append(fd)
            raise OSError(28, "No space left on device")
        self.real.register(fd, mask)

    def __getattr__(self, name):
        return getattr(self.real, name)


@pytest.mark.parametrize("where", ["socket", "poll"])
def test_a_client_that_cannot_be_served_is_let_go_and_the_next_one_served(
        tmp_path, monkeypatch, where):
    # accept() handed a descriptor, and making a socket of it (ENOMEM) or polling it (ENOSPC)
    # failed: that client is closed, the engine forgets it, one line is logged, and the loop
    # goes on
    conf = tmp_path / "broker.conf"
    conf.write_text("allow_anonymous true\n")
    lines = []
    config = make_config(conf)
    server = Server(config, lambda level, msg: lines.append(msg))
    server.bind()
    port = int(server.addresses[0].rsplit(":", 1)[1])
    refused = []
    if where == "socket":
        real = socket.socket

        def once(family=-1, type=-1, proto=-1, fileno=None):
            if fileno is not None and not refused:
                refused.append(fileno)
                raise OSError(12, "Cannot allocate memory")
            return real(family, type, proto, fileno)

        monkeypatch.setattr(server_module.socket, "socket", once)
    else:
        server.poller = _RefusingPoller(server.poller)
        refused = server.poller.refused
    first = socket.create_connection(("127.0.0.1", port))
    try:
        for _ in range(20):
            server.step(50)
            if refused:
                break
        assert refused, "the broker did not accept the first connection"
        with pytest.raises(OSError):
            os.fstat(refused[0])  # closed, not leaked
        first.settimeout(5)
        assert first.recv(1) == b""  # the client sees its connection end
        assert len(server.broker.conns) == 0 and not server.conns
        assert [m for m in lines if m.startswith("Error accepting a connection: ")] \
            == ["Error accepting a connection: %s." % ("Cannot allocate memory" if where == "socket"
                                                       else "No space left on device")]
        monkeypatch.undo()
        second = socket.create_connection(("127.0.0.1", port))
        try:
            assert _accepted(server, second) is not None
        finally:
            second.close()
    finally:
        first.close()
        monkeypatch.undo()
        server.close()
