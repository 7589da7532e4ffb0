"""Engine under overload and abuse (issue 15): refusals that stay polite, logs that stay short.

Plain functions with plain asserts: pytest runs them on CPython, tools/mptest.py on MicroPython.
"""
from broker.packets import encode_connect
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
