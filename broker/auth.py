"""password_file checks: an iterated, salted SHA-256 (hashlib and binascii only, both runtimes).

Imported by broker.handle_connect only when the configuration has a password_file. A file entry
(broker.config reads it into config.passwords) is (iterations, salt, hash) with

    h = sha256(salt + password)
    repeat iterations - 1 times:  h = sha256(h + salt + password)
    hash = h

password is the CONNECT packet's password field (bytes: MQTT passwords are binary; the passwd
tool stores the UTF-8 of what it is given). See docs/configuration.md.
"""
import hashlib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional, Tuple

DEFAULT_ITERATIONS = 1000


def digest(password: bytes, salt: bytes, iterations: int) -> bytes:
    """The stored hash of password: iterations rounds of SHA-256 (at least one)."""
    tail = salt + password
    h = hashlib.sha256(tail).digest()
    for _ in range(iterations - 1):
        s = hashlib.sha256(h)
        s.update(tail)  # not h + tail: a board's heap is spared one object per round
        h = s.digest()
    return h


def check(entry: "Optional[Tuple[int, bytes, bytes]]", password: "Optional[bytes]") -> bool:
    """True when password matches entry (a config.passwords value); False for a missing entry
    or password. Compares every byte, so the time taken does not tell where they differ."""
    if entry is None or password is None:
        return False
    iterations, salt, want = entry
    got = digest(bytes(password), salt, iterations)
    if len(got) != len(want):
        return False
    diff = 0
    for i in range(len(got)):
        diff |= got[i] ^ want[i]
    return diff == 0
