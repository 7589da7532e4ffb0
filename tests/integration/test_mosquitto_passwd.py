"""password_file written by the real mosquitto_passwd ($7$, PBKDF2-SHA512): checked on CPython
(and by mosquitto itself); MicroPython, whose hashlib has no SHA-512, stops at start-up in one
line that says which format to use."""

from __future__ import annotations

import subprocess

import pytest

from conftest import require_peer, startup_error


def mosquitto_passwd(path, user, password):
    subprocess.run([require_peer("mosquitto_passwd"), "-b", str(path), user, password],
                   check=True, timeout=30, capture_output=True)


@pytest.mark.kinds("cpython", "mosquitto")
def test_mosquitto_passwd_file(broker_factory, raw_client, tmp_path):
    path = tmp_path / "passwd"
    path.touch()
    mosquitto_passwd(path, "alice", "wonderland")
    mosquitto_passwd(path, "bob", "builder")
    assert path.read_text().startswith("alice:$7$"), path.read_text()
    # as root, mosquitto runs as the user mosquitto, which cannot read the test's folder
    b = broker_factory(["password_file %s" % path, "allow_anonymous false", "user root"])
    for cid, user, password, ok in (("a", "alice", "wonderland", True),
                                    ("b", "bob", "builder", True),
                                    ("w", "alice", "builder", False),
                                    ("u", "mallory", "wonderland", False)):
        c = raw_client(b)
        ack = c.connect(cid, username=user, password=password)
        # refused: 0x04 here, 0x05 from mosquitto 2.0
        assert (ack.return_code == 0) == ok, (cid, ack)


@pytest.mark.own_broker
@pytest.mark.kinds("micropython")
def test_mosquitto_passwd_file_refused_without_sha512(broker_factory, tmp_path):
    path = tmp_path / "passwd"
    path.touch()
    mosquitto_passwd(path, "alice", "wonderland")
    error, b = startup_error(broker_factory, ["password_file %s" % path,
                                              "allow_anonymous false"])
    assert error == ("Error: %s:1: user 'alice': mosquitto_passwd's $7$ hash needs SHA-512,"
                     " which this runtime's hashlib lacks: use the $sha256$ format, entering"
                     " each password again with 'python -m broker.passwd FILE USER'" % path), error
