"""Root pytest configuration: make the repository root importable (`import broker`), and
tests/core, whose helpers the other suites use too (`import packets`: whole packets as bytes and
objects; `from harness import Hub`)."""
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for path in (REPO_ROOT, os.path.join(REPO_ROOT, "tests", "core")):
    if path not in sys.path:
        sys.path.insert(0, path)

# The compiled core when it was built and PURE is not set (ports/cpython/compiled.py), before any
# test imports a module of it.
from ports.cpython import compiled  # noqa: E402,F401
