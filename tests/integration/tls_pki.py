"""The session's throw-away certificates, made once with the openssl command (Debian package
openssl; a skip locally without it, a failure under CI=true). conftest.py exposes the fixture
`pki` to every integration test.

    ca.crt            the CA the brokers trust
    server.crt        for localhost and 127.0.0.1, signed by ca
    client.crt        a client certificate signed by ca
    rogue-ca.crt      a CA nobody trusts; rogue.crt is signed by it
    elsewhere.crt     signed by ca for the name elsewhere.example only (a host name mismatch)
    subject.crt       signed by ca, subject C=GB, O=Acme, Inc, OU=Prod, CN=dev 1
    nocn.crt          signed by ca, with no commonName (O=no common name)

Each .crt has its .key (EC P-256, unencrypted).
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def _openssl() -> str:
    path = shutil.which("openssl")
    if path is None:
        reason = "openssl not installed: apt-get install openssl"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " (a missing peer is a failure under CI)", pytrace=False)
        pytest.skip(reason)
    return path


class Pki:
    """Paths of the session's PEM files."""

    def __init__(self, folder):
        self.folder = folder

    def path(self, name):
        return str(self.folder / name)


def _run(*args):
    subprocess.run(list(args), check=True, capture_output=True)


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    openssl = _openssl()
    pki = Pki(tmp_path_factory.mktemp("pki"))
    p = pki.path
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("ca", "rogue-ca"):
        _run(openssl, "req", "-x509", *ec, "-keyout", p(ca + ".key"), "-out", p(ca + ".crt"),
             "-days", "2", "-subj", "/CN=broker test %s" % ca)
    names = {"server": "DNS:localhost,IP:127.0.0.1", "elsewhere": "DNS:elsewhere.example"}
    for name, alt in names.items():
        with open(p(name + ".ext"), "w") as f:
            f.write("subjectAltName=%s\n" % alt)
    subjects = {"subject": "/C=GB/O=Acme, Inc/OU=Prod/CN=dev 1", "nocn": "/O=no common name"}
    for name, ca in (("server", "ca"), ("elsewhere", "ca"), ("client", "ca"),
                     ("rogue", "rogue-ca"), ("subject", "ca"), ("nocn", "ca")):
        ext = ["-extfile", p(name + ".ext")] if name in names else []
        _run(openssl, "req", *ec, "-keyout", p(name + ".key"), "-out", p(name + ".csr"),
             "-subj", subjects.get(name, "/CN=%s" % name))
        _run(openssl, "x509", "-req", "-in", p(name + ".csr"), "-CA", p(ca + ".crt"),
             "-CAkey", p(ca + ".key"), "-CAcreateserial", "-out", p(name + ".crt"),
             "-days", "2", *ext)
    return pki
