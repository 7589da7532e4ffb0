# The compiled core when it was built (ports/cpython/compiled.py): before any module of it loads.
# (MicroPython imports this package too, for the password_file tool.)
import sys

if sys.implementation.name != "micropython":
    from ports.cpython import compiled  # noqa: F401
