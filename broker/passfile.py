"""The password_file format (see docs/configuration.md): read at start-up only, imported by
broker.config only when the configuration names a password file, and unloaded with it."""
from broker.config import ConfigError, _Located, content_lines

_MAX_ITERATIONS = 1000000


def _b64(text: str) -> bytes:
    from binascii import a2b_base64
    for c in text:  # a2b_base64 skips characters outside the alphabet: refuse them here
        if not ("A" <= c <= "Z" or "a" <= c <= "z" or "0" <= c <= "9" or c in "+/="):
            raise ValueError(c)
    # bytes: ports whose binascii is micropython-lib's Python module (webassembly) take no str
    return a2b_base64(text.encode())


def _password_line(text: str) -> "tuple[str, tuple[int, bytes, bytes]]":
    """One line of a password file -> (username, (iterations, salt, hash)); ConfigError (the
    reason only) when it is malformed. Takes the project's $sha256$ and mosquitto_passwd's $7$
    and $6$ (broker.auth tells them apart by the hash's length and iterations 0 for $6$)."""
    colon = text.find(":")
    if colon < 0:
        raise ConfigError("expected 'username:$sha256$ITERATIONS$SALT$HASH'")
    user = text[:colon]
    if not user:
        raise ConfigError("empty username")
    parts = text[colon + 1:].split("$")
    kind = parts[1] if len(parts) > 1 and not parts[0] else ""
    if kind in ("6", "7"):
        _sha512_available(user, kind)
    if kind == "6" and len(parts) == 4:
        parts.insert(2, "0")
    if len(parts) != 5 or kind not in ("sha256", "6", "7"):
        raise ConfigError("user '%s': expected a hash '$sha256$ITERATIONS$SALT$HASH'"
                          " (made by python -m broker.passwd), or mosquitto_passwd's"
                          " '$7$ITERATIONS$SALT$HASH' or '$6$SALT$HASH'" % user)
    its = parts[2]
    if not its or len(its) > 7 or not _digits(its):
        raise ConfigError("user '%s': iterations: expected an integer, got '%s'" % (user, its))
    iterations = int(its)
    if kind != "6" and not 1 <= iterations <= _MAX_ITERATIONS:
        raise ConfigError("user '%s': iterations: %d is out of range (1..%d)"
                          % (user, iterations, _MAX_ITERATIONS))
    try:
        salt = _b64(parts[3])
        digest = _b64(parts[4])
    except Exception:  # binascii.Error (a ValueError); micropython-lib's binascii raises Exception
        raise ConfigError("user '%s': salt and hash must be base64" % user)
    if not salt:
        raise ConfigError("user '%s': empty salt" % user)
    size = 32 if kind == "sha256" else 64
    if len(digest) != size:
        raise ConfigError("user '%s': the hash must be %d bytes (SHA-%d), got %d"
                          % (user, size, size * 8, len(digest)))
    return user, (iterations, salt, digest)


def _sha512_available(user: str, kind: str) -> None:
    import hashlib
    if not hasattr(hashlib, "sha512") or (kind == "7" and not hasattr(hashlib, "pbkdf2_hmac")):
        # A hash cannot be turned into another without the password it was made from.
        raise ConfigError("user '%s': mosquitto_passwd's $%s$ hash needs SHA-512, which this"
                          " runtime's hashlib lacks: use the $sha256$ format, entering each"
                          " password again with 'python -m broker.passwd FILE USER'"
                          % (user, kind))


def _digits(text: str) -> bool:
    for c in text:
        if c < "0" or c > "9":
            return False
    return True


def parse_passwords(text: str, filename: str = "<passwords>"
                    ) -> "dict[str, tuple[int, bytes, bytes]]":
    """A password file's text -> {username: (iterations, salt, hash)}. Blank lines and lines
    starting with # are skipped; the first malformed line raises "FILE:LINE: reason"."""
    users = {}  # type: dict[str, tuple[int, bytes, bytes]]
    where = {}  # type: dict[str, int]
    reason = None
    for line, s in content_lines(text):
        try:
            user, entry = _password_line(s)
            if user in users:
                raise ConfigError("user '%s' is defined twice (first on line %d)"
                                  % (user, where[user]))
            users[user] = entry
            where[user] = line
        except ConfigError as e:
            reason = e.args[0]
        if reason is not None:
            raise _Located("%s:%d: %s" % (filename, line, reason))
    return users


def dummy_entry(users: "dict[str, tuple[int, bytes, bytes]]"
                ) -> "tuple[int, bytes, bytes] | None":
    """The entry an unknown user's password is checked against (config.password_dummy), shaped
    like the file's entries so that the check costs what a known user's does: the hash function
    and iteration count most users have (the cheaper on a tie: made-up names should not cost the
    most), with a salt as long as theirs. A user of another shape can still be told from an
    unknown one by the time a check takes; no dummy helps a file with mixed shapes there. The
    hash is all zeros, which no password gives, and check() refuses an unknown user whatever it
    is. None with no users: check() then uses the passwd tool's shape."""
    counts = {}  # type: dict[tuple[int, int], int]
    for e in users.values():
        shape = (len(e[2]), e[0])
        counts[shape] = counts.get(shape, 0) + 1
    best = None  # type: tuple[int, int] | None
    for shape in counts:
        if best is None or counts[shape] > counts[best] or (
                counts[shape] == counts[best] and shape < best):
            best = shape
    for e in users.values():
        if (len(e[2]), e[0]) == best:
            return e[0], bytes(len(e[1])), bytes(len(e[2]))
    return None
