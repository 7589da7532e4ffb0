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

if MPY:
    class SkipTest(Exception):
        pass
else:
    from unittest import SkipTest  # noqa: F401
