"""The MicroPython port's heap plan (ports/micropython/heapplan.py): a configuration that cannot
serve one client in its heap stops start-up in one line; the budgets of kept messages come from
the heap when the configuration sets none. MicroPython only (it reads gc.mem_alloc)."""
from broker.config import parse
from broker.engine import Broker
from support import MPY, SkipTest


def _plan(config_text: str, usable: int) -> "tuple":
    """Run the plan as if the heap had `usable` bytes free beside the sixteenth it keeps."""
    if not MPY:
        raise SkipTest("the heap plan is the MicroPython port's")
    import gc
    import sys
    from ports.micropython import heapplan
    config = parse(config_text + "allow_anonymous true\n", "<plan>")
    b = Broker(config, None, 0)
    lines = []
    gc.collect()
    used = gc.mem_alloc()  # (a runner that cannot collect during a test counts its garbage)
    free = (usable + used // 16) * 16 // 15 + 64
    error = heapplan.plan(b, config, lambda: free, lambda level, msg: lines.append(msg))
    assert "ports.micropython.heapplan" not in sys.modules  # it unloads itself
    return error, lines, b.ledger, used + free


def test_a_heap_that_cannot_serve_one_client_is_refused_in_one_line() -> None:
    error, lines, ledger, heap = _plan("max_connections 8\n", 2048)
    assert error.startswith("the configuration does not fit a heap of "), error
    assert "KB are in use after start-up" in error, error
    assert "\n" not in error and lines == []


def test_the_budgets_come_from_the_heap_unless_configured() -> None:
    error, lines, ledger, heap = _plan("max_connections 2\nmax_subscriptions 4\nmax_sessions 4\n"
                                       "max_retained_messages 4\n", 200000)
    assert error == "" and lines == []
    assert 190000 < ledger.limit <= 200000 and ledger.queue_limit == ledger.limit
    error, lines, ledger, heap = _plan("memory_limit 5000\nmax_queued_bytes 1000\n", 200000)
    assert (ledger.limit, ledger.queue_limit) == (5000, 1000)


def test_connections_or_tables_that_would_not_fit_are_a_warning() -> None:
    error, lines, ledger, heap = _plan("max_connections 500\n", 60000)  # 1 KB a board
    assert error == "" and len(lines) == 1
    assert lines[0].startswith("Warning: 500 connections (max_connections) need about"), lines
    assert 29500 < ledger.limit < 30500  # half of what is free: fewer clients at once
    error, lines, ledger, heap = _plan("max_connections 2\nmax_subscriptions 5000\n", 60000)
    assert error == "" and len(lines) == 1 and "max_subscriptions" in lines[0], lines
