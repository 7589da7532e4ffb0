"""password_file checks: the project's iterated, salted SHA-256 (hashlib and binascii only,
both runtimes), and mosquitto_passwd's SHA-512 hashes (CPython: broker.passfile refuses them
where hashlib has no sha512).

Imported by broker.handle_connect only when the configuration has a password_file. A file entry
(broker.config reads it into config.passwords) is (iterations, salt, hash); the hash's length
says which function made it. A 64-byte hash is mosquitto_passwd's: PBKDF2-HMAC-SHA512 with that
many iterations ($7$), or, with iterations 0, sha512(password + salt) ($6$). PBKDF2's HMAC hashes
a password longer than SHA-512's block once, so its rounds cost the same whatever its length.
A 32-byte hash is the project's own:

    key = password, or sha256(password) when it is longer than 64 bytes
    h = sha256(salt + key)
    repeat iterations - 1 times:  h = sha256(h + salt + key)
    hash = h

password is the CONNECT packet's password field (bytes: MQTT passwords are binary; the passwd
tool stores the UTF-8 of what it is given). The key follows HMAC's rule for a key longer than
the hash's block (64 bytes for SHA-256): a long password is read once, not once per round, so the
rounds cost the same whatever its length (read every round, a 64 KB password would take some
40 ms of CPU per check on a PC), and a password of up to 64 bytes is its own key. See
docs/configuration.md.
"""
import hashlib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional, Tuple

DEFAULT_ITERATIONS = 1000


def digest(password: bytes, salt: bytes, iterations: int) -> bytes:
    """The stored hash of password: iterations rounds of SHA-256 (at least one)."""
    if len(password) > 64:  # SHA-256's block size
        password = hashlib.sha256(password).digest()
    tail = salt + password
    h = hashlib.sha256(tail).digest()
    for _ in range(iterations - 1):
        s = hashlib.sha256(h)
        s.update(tail)  # not h + tail: a board's heap is spared one object per round
        h = s.digest()
    return h


def _hash(password: bytes, salt: bytes, iterations: int, size: int) -> bytes:
    if size == 32:
        return digest(password, salt, iterations)
    if iterations:
        return hashlib.pbkdf2_hmac("sha512", password, salt, iterations)
    s = hashlib.sha512(password)
    s.update(salt)
    return s.digest()


def check(entry: "Optional[Tuple[int, bytes, bytes]]", password: "Optional[bytes]",
          dummy: "Optional[Tuple[int, bytes, bytes]]" = None) -> bool:
    """True when password matches entry (a config.passwords value). A missing entry (an unknown
    user) is checked against dummy (config.password_dummy; None: an entry shaped as the passwd
    tool makes them) and a missing password as an empty one, then refused: the work done, and
    so the time taken, does not tell an unknown user or a missing password from a wrong
    password. Compares every byte, so the time does not tell where they differ either."""
    ok = entry is not None and password is not None
    if entry is None:
        entry = dummy or (DEFAULT_ITERATIONS, bytes(12), bytes(32))
    iterations, salt, want = entry
    got = _hash(b"" if password is None else password, salt, iterations, len(want))
    if len(got) != len(want):
        return False
    diff = 0
    for i in range(len(got)):
        diff |= got[i] ^ want[i]
    return ok and diff == 0
