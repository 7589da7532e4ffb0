"""ports.logdest.Log: a turn's lines held and written at once (the CPython port's loop).

Plain functions with plain asserts: pytest runs them on CPython, tools/mptest.py on MicroPython.
"""
from broker.config import parse
from ports.logdest import Log


class _Stream:
    def __init__(self) -> None:
        self.writes = []  # type: list

    def write(self, text: str) -> None:
        self.writes.append(text)

    def flush(self) -> None:
        pass


def _log() -> "tuple":
    log = Log(parse("log_dest stderr\nlog_timestamp false\n", "<test>", None, None))
    stream = _Stream()
    log.streams = [stream]
    return log, stream


def test_each_line_written_at_once_when_not_held():
    log, stream = _log()
    log(0x04, "one")
    log(0x04, "two")
    assert stream.writes == ["one\n", "two\n"]


def test_held_lines_written_together_in_order_at_release():
    log, stream = _log()
    log.hold()
    log(0x04, "one")
    log(0x02, "two")
    assert stream.writes == []
    log.release()
    assert stream.writes == ["one\ntwo\n"]
    log(0x04, "three")  # released: at once again
    assert stream.writes == ["one\ntwo\n", "three\n"]


def test_a_turn_with_no_lines_writes_nothing():
    log, stream = _log()
    log.hold()
    log.release()
    assert stream.writes == []
