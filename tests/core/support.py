"""Helpers shared by the core tests, importable on CPython and MicroPython.

    from support import SkipTest, MPY

    def test_needs_heap_lock():
        if not MPY:
            raise SkipTest("heap_lock exists only on MicroPython")

Under pytest, SkipTest is unittest.SkipTest, which pytest reports as a skip; under
tools/mptest.py on MicroPython (no unittest module) it is a plain exception that the
runner recognises by its class name.
"""
import os
import sys

MPY = sys.implementation.name == "micropython"


def temp_path(name: str) -> str:
    """A file under /tmp for one test module (MicroPython has no tempfile module)."""
    pid = os.getpid() if hasattr(os, "getpid") else 0
    return "/tmp/broker-test-%d-%s" % (pid, name)


def write_file(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def remove_file(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass

def error_of(text: str, filename: str = "broker.conf") -> str:
    """The one-line message broker.config.parse() refuses text with (fails if it accepts it)."""
    from broker.config import ConfigError, parse
    from ports.readfile import read_file
    try:
        parse(text, filename, None, read_file)
    except ConfigError as e:
        msg = str(e)
        assert "\n" not in msg, msg
        return msg
    assert False, "accepted: %r" % text
    return ""


def file_error_of(option: str, path: str, text: str) -> str:
    """error_of() for a configuration naming the file `path` (written with text) in `option`."""
    write_file(path, text)
    try:
        return error_of("%s %s\n" % (option, path))
    finally:
        remove_file(path)


def raises_exactly(cls: type, f: "object", *args: "object") -> Exception:
    """The exception f(*args) raises, which must be of class cls itself: a subclass does not
    count (a ProtocolError is a MalformedPacket with another reason code)."""
    try:
        f(*args)  # type: ignore[operator]
    except Exception as e:
        assert type(e) is cls, (cls, type(e), e, args)
        return e
    assert False, ("accepted", args)


from broker import output  # noqa: E402

if MPY:
    class SkipTest(Exception):
        pass
else:
    from unittest import SkipTest  # noqa: F401


def compiled() -> bool:
    """The core runs as mypyc compiled it (ports/cpython/compiled.py): its modules' builtins and
    functions are bound at compile time, and replacing them from a test changes nothing."""
    return not MPY and type(output.reserve).__name__ == "builtin_function_or_method"
