# The compiled core when it was built (ports/cpython/compiled.py): before any module of it loads.
from ports.cpython import compiled  # noqa: F401
