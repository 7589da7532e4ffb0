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
    reason only) when it is malformed."""
    colon = text.find(":")
    if colon < 0:
        raise ConfigError("expected 'username:$sha256$ITERATIONS$SALT$HASH'")
    user = text[:colon]
    if not user:
        raise ConfigError("empty username")
    parts = text[colon + 1:].split("$")
    if len(parts) != 5 or parts[0] or parts[1] != "sha256":
        raise ConfigError("user '%s': expected a hash '$sha256$ITERATIONS$SALT$HASH'"
                          " (made by python -m broker.passwd)" % user)
    its = parts[2]
    if not its or len(its) > 7 or not _digits(its):
        raise ConfigError("user '%s': iterations: expected an integer, got '%s'" % (user, its))
    iterations = int(its)
    if not 1 <= iterations <= _MAX_ITERATIONS:
        raise ConfigError("user '%s': iterations: %d is out of range (1..%d)"
                          % (user, iterations, _MAX_ITERATIONS))
    try:
        salt = _b64(parts[3])
        digest = _b64(parts[4])
    except Exception:  # binascii.Error (a ValueError); micropython-lib's binascii raises Exception
        raise ConfigError("user '%s': salt and hash must be base64" % user)
    if not salt:
        raise ConfigError("user '%s': empty salt" % user)
    if len(digest) != 32:
        raise ConfigError("user '%s': the hash must be 32 bytes (SHA-256), got %d"
                          % (user, len(digest)))
    return user, (iterations, salt, digest)


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
    like the file's entries so that the check costs what a known user's does: the iteration
    count most users have (the smaller on a tie: made-up names should not cost the most), with
    a salt as long as theirs. A user with another count can still be told from an unknown one
    by the time a check takes; no dummy helps a file with mixed counts there. The hash is all
    zeros, which no password gives, and check() refuses an unknown user whatever it is. None
    with no users: check() then uses the passwd tool's shape."""
    counts = {}  # type: dict[int, int]
    for e in users.values():
        counts[e[0]] = counts.get(e[0], 0) + 1
    best = 0
    for it in counts:
        if best == 0 or counts[it] > counts[best] or (counts[it] == counts[best] and it < best):
            best = it
    for e in users.values():
        if e[0] == best:
            return best, bytes(len(e[1])), bytes(32)
    return None
