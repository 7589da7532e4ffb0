"""ports.cpython.testing: running(), arunning() and RunningBroker, without the pytest fixtures."""
import asyncio
import logging
import socket
import threading

import pytest

import ports.cpython.server as server_module
from broker import keepalive, lifecycle
from broker.config import ConfigError, parse
from broker.settings import Config, Listener
from ports.cpython.testing import RunningBroker, arunning, make_config, running
from plugin_helpers import Client, open_fds, threads

CONNACK_ACCEPTED = 0
CONNACK_SERVER_UNAVAILABLE = 3
CONNACK_NOT_AUTHORIZED = 5


def _round_trip(port):
    with Client(port) as sub, Client(port) as pub:
        assert sub.connect("sub") == CONNACK_ACCEPTED
        assert pub.connect("pub") == CONNACK_ACCEPTED
        sub.subscribe("a/#", 1)
        pub.publish("a/b", b"payload", qos=1)
        msg = sub.message()
        assert (msg.topic, msg.payload) == (b"a/b", b"payload")


@pytest.fixture
def slow_poll(monkeypatch):
    """A poll timeout no test could wait out: stopping promptly needs the wake-up."""
    monkeypatch.setattr(server_module, "_POLL_MS", 60000)


def test_running_default(slow_poll):
    with running() as b:
        assert b.host == "127.0.0.1" and b.port > 0
        assert b.url == "mqtt://127.0.0.1:%d" % b.port
        assert b.config.allow_anonymous is True
        _round_trip(b.port)
    assert not b.thread.is_alive()


def test_running_config_text():
    with running("max_connections 1\nmax_queued_messages 5") as b:
        assert b.config.max_queued_messages == 5
        assert b.host == "127.0.0.1"  # no listener in the text: loopback, ephemeral port
        assert b.config.allow_anonymous is True
        with Client(b.port) as first, Client(b.port) as second:
            assert first.connect("first") == CONNACK_ACCEPTED
            assert second.connect("second") == CONNACK_SERVER_UNAVAILABLE


def test_running_config_object_is_not_changed():
    cfg = Config()
    cfg.max_connections = 1
    with running(cfg) as b:
        assert b.config is not cfg and b.config.max_connections == 1
        _assert_refused_second(b.port)
    assert cfg.listeners == []


def _assert_refused_second(port):
    with Client(port) as first, Client(port) as second:
        assert first.connect("first") == CONNACK_ACCEPTED
        assert second.connect("second") == CONNACK_SERVER_UNAVAILABLE


def test_running_options_by_name():
    with running("max_connections 5", max_connections=1, retain_available=False) as b:
        assert b.config.retain_available is False
        _assert_refused_second(b.port)


def test_running_config_path(tmp_path):
    path = tmp_path / "test.conf"
    path.write_text("max_connections 1\n")
    with running(path) as b:
        _assert_refused_second(b.port)


def test_a_listener_in_the_config_is_kept():
    # mosquitto 2: a configuration that names a listener must allow anonymous clients itself.
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with running("listener %d 127.0.0.1" % port) as b:
        assert b.port == port and b.url == "mqtt://127.0.0.1:%d" % port
        with Client(b.port) as c:
            assert c.connect("anon") == CONNACK_NOT_AUTHORIZED
    cfg = Config()
    cfg.listeners.append(Listener(0, "0.0.0.0"))
    with running(cfg) as b:  # a wildcard listener is reached through loopback
        assert b.host == "127.0.0.1" and b.addresses == ["0.0.0.0:%d" % b.port]
        _round_trip(b.port)


def test_bad_config_raises_config_error():
    with pytest.raises(ConfigError, match="unknown option 'no_such_option'"):
        with running("no_such_option 1"):
            pass
    with pytest.raises(ConfigError, match="max_connections"):
        make_config(max_connections="many")
    with pytest.raises(TypeError):
        make_config(42)


def test_make_config_forces_loopback_ephemeral_listener():
    cfg = make_config()
    assert [(lst.host, lst.port) for lst in cfg.listeners] == [("127.0.0.1", 0)]
    cfg = make_config(parse("log_type error\nlog_type warning"), log_type=["debug", "error"])
    assert cfg.listeners[0].port == 0


def test_port_is_known_and_connectable_before_the_thread_runs():
    b = RunningBroker()
    try:
        # Bound and listening, not yet served: the kernel completes the TCP handshake.
        sock = socket.create_connection((b.host, b.port), timeout=5)
        b.start()
        with Client(b.port):
            pass
        sock.sendall(bytes([0x10, 12, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 60, 0, 0]))
        assert sock.recv(4) == bytes([0x20, 2, 0, 0])  # served once the loop runs
        sock.close()
    finally:
        b.stop()


def test_stop_before_serving_starts_returns_at_once(slow_poll):
    # stop() may come before the thread has even entered its loop: the wake-up is not lost.
    srv = server_module.Server(make_config(), log=lambda level, msg: None)
    srv.bind()
    srv.stop()
    srv.serve()  # returns without waiting for the poll timeout
    assert srv.listeners == {}


def test_stop_is_prompt_and_leaves_nothing_behind(slow_poll):
    with running():  # warm up: imports and first-use allocations are not leaks
        pass
    fds, live = open_fds(), threads()
    with running() as b:
        clients = [Client(b.port) for _ in range(3)]
        for i, c in enumerate(clients):
            assert c.connect("c%d" % i) == CONNACK_ACCEPTED
        assert b.thread in threads()
        assert len(open_fds() - fds) >= 3 + 3 + 1 + 2  # clients, their peers, listener, ...
        b.stop(timeout=10)  # with a 60 s poll timeout, only the wake-up makes this prompt
        assert not b.thread.is_alive()
    # Every connection was closed by the broker: each client reads EOF.
    for c in clients:
        assert c.recv() is None
        c.close()
    assert threads() - live == set()
    assert open_fds() - fds == set()


def test_stop_twice_and_stop_without_start():
    fds = open_fds()
    b = RunningBroker()
    b.stop()
    b.stop()
    assert open_fds() - fds == set()
    with running() as b:
        b.stop()
    b.stop()
    with pytest.raises(RuntimeError):
        b.start()


def test_serving_thread_failure_is_reported(monkeypatch):
    real_tick = keepalive.tick
    failing = []

    def broken_tick(broker, now):  # this broker's only: the plugin's own brokers run beside it
        if broker in failing:
            raise ValueError("boom")
        real_tick(broker, now)
    fds = open_fds()
    with pytest.raises(RuntimeError, match="broker thread failed") as info:
        with running() as b:
            failing.append(b.server.broker)
            monkeypatch.setattr(keepalive, "tick", broken_tick)
            b.thread.join(10)
    assert isinstance(info.value.__cause__, ValueError)
    assert open_fds() - fds == set()


def test_log_lines_callback_and_logger(caplog):
    seen = []
    with caplog.at_level(logging.INFO, logger="broker.testing"):
        with running(log=lambda level, msg: seen.append(msg)) as b:
            with Client(b.port) as c:
                c.connect("logged")
    assert any("as logged" in line for line in b.log_lines)
    assert seen == list(b.log_lines)
    assert any("as logged" in r.getMessage() for r in caplog.records)


def test_arunning_round_trip_and_no_leaks(slow_poll):
    async def main():
        async with arunning("max_connections 2") as b:
            reader, writer = await asyncio.open_connection(b.host, b.port)
            writer.write(bytes([0x10, 12, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 60, 0, 0]))
            assert await reader.readexactly(4) == bytes([0x20, 2, 0, 0])
            assert b.config.max_connections == 2
        # Stopped without blocking the loop; the broker closed the connection.
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
        return b

    asyncio.run(main())  # warm up the event loop machinery
    fds, live = open_fds(), threads()
    b = asyncio.run(main())
    assert not b.thread.is_alive()
    assert threads() - live == set()
    assert open_fds() - fds == set()


def test_arunning_does_not_block_the_event_loop(monkeypatch):
    async def main():
        ticks = 0
        stopping = True

        async def ticker():
            nonlocal ticks
            while stopping:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.ensure_future(ticker())
        async with arunning() as b:
            # Keep the serving thread busy past the stop request so that astop() must wait.
            hold = threading.Event()
            real_shutdown = lifecycle.shutdown
            mine = b.server.broker

            def held_shutdown(broker):  # this broker's only, as above
                if broker is mine:
                    hold.wait(5)
                real_shutdown(broker)
            monkeypatch.setattr(lifecycle, "shutdown", held_shutdown)
            asyncio.get_running_loop().call_later(0.05, hold.set)
            before = ticks
        after = ticks
        stopping = False
        await task
        return after - before

    assert asyncio.run(main()) > 5  # the loop ran while the broker was stopping


def test_listener_that_cannot_open_raises_and_leaks_nothing():
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    fds = open_fds()
    try:
        with pytest.raises(OSError):
            with running("listener %d 127.0.0.1" % busy.getsockname()[1]):
                pass
    finally:
        busy.close()
    assert open_fds() - fds == set()
