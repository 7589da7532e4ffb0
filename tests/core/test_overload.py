"""Engine under overload and abuse (issue 15): refusals that stay polite, logs that stay short.

Plain functions with plain asserts: pytest runs them on CPython, tools/mptest.py on MicroPython.
"""
from broker.const import CONNACK
from broker.packets import encode_connect, encode_subscribe
from harness import Hub


def test_repeated_refusals_are_logged_once_per_interval_with_a_count():
    hub = Hub("max_connections 1\n")
    hub.client().connect("first")
    for i in range(5):
        c = hub.client()
        c.send(encode_connect("late-%d" % i))
        assert c.closed
    refused = [line for line in hub.lines if "max_connections (1) reached" in line]
    assert refused == ["Client late-0 refused: max_connections (1) reached."], refused
    hub.advance(10000)
    summary = [line for line in hub.lines if "more like this" in line]
    assert summary == ["Client late-4 refused: max_connections (1) reached."
                       " (4 more like this in the last 10 s)"], hub.lines
    # a new interval logs its first line again, and an interval with one line has no summary
    c = hub.client()
    c.send(encode_connect("later"))
    hub.advance(10000)
    assert hub.lines[-1] == "Client later refused: max_connections (1) reached.", hub.lines


def _raise_memory_error(*args: object) -> None:
    raise MemoryError


def test_refusals_for_room_share_one_constant_connack():
    # CONNACK 0x03 for max_connections needs no buffer of its own: the heap may be what is
    # short when clients are refused in numbers
    hub = Hub("max_connections 1\n")
    hub.client().connect("first")
    refused = []
    for i in range(2):
        c = hub.client()
        c.send(encode_connect("late-%d" % i))
        assert c.closed
        refused.append(c.conn.out)
    assert bytes(refused[0][:4]) == b"\x20\x02\x00\x03"
    assert refused[0] is refused[1]


def test_out_of_memory_on_connect_before_the_session_answers_connack_3():
    hub = Hub()
    hub.broker.add_session = _raise_memory_error  # type: ignore[method-assign]
    c = hub.client()
    c.send(encode_connect("short"))
    assert c.closed
    got = c.recv()
    assert [(p.type, p.return_code) for p in got] == [(CONNACK, 3)], got
    assert hub.broker.connected == 0


def test_out_of_memory_on_connect_after_admission_answers_connack_3():
    # the client counted as connected, and its session was made, when the heap ran out
    # before its CONNACK: it gets 0x03 all the same, and nothing of it stays
    hub = Hub()
    hub.broker.log = _raise_memory_error  # type: ignore[method-assign]
    c = hub.client()
    c.send(encode_connect("short"))
    assert c.closed
    got = c.recv()
    assert [(p.type, p.return_code) for p in got] == [(CONNACK, 3)], got
    assert hub.broker.connected == 0
    assert "short" not in hub.broker.sessions


def test_out_of_memory_after_the_connack_sends_no_second_one():
    hub = Hub()
    hub.broker.subs.subscribe = _raise_memory_error  # type: ignore[method-assign]
    c = hub.client()
    c.send(encode_connect("short") + encode_subscribe(1, [("a/b", 0)]))
    assert c.closed
    got = c.recv()
    assert [(p.type, p.return_code) for p in got] == [(CONNACK, 0)], got
