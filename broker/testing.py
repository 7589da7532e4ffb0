"""A broker for other people's tests: start one in-process, on an ephemeral loopback port.

    from broker.testing import running

    with running() as b:            # b.host, b.port, b.url ("mqtt://127.0.0.1:PORT"), b.log_lines
        ...
    with running("max_connections 1") as b: ...
    async with arunning() as b: ...

CPython only. The sockets and the thread live in the CPython port (ports.cpython.testing); this
module only names its API, so that the portable core imports no I/O. The pytest fixtures built
on it are in broker.pytest_plugin; docs/testing.md shows both.
"""
from ports.cpython.testing import (  # noqa: F401
    LOOPBACK as LOOPBACK, RunningBroker as RunningBroker, arunning as arunning,
    make_config as make_config, running as running,
)

__all__ = ["RunningBroker", "arunning", "make_config", "running", "LOOPBACK"]
