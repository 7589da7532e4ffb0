"""Helpers shared by the core tests, importable on CPython and MicroPython.

    from support import SkipTest, MPY

    def test_needs_heap_lock():
        if not MPY:
            raise SkipTest("heap_lock exists only on MicroPython")

Under pytest, SkipTest is unittest.SkipTest, which pytest reports as a skip; under
tools/mptest.py on MicroPython (no unittest module) it is a plain exception that the
runner recognises by its class name.
"""
import sys

MPY = sys.implementation.name == "micropython"

if MPY:
    class SkipTest(Exception):
        pass
else:
    from unittest import SkipTest  # noqa: F401
