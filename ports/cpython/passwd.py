"""Manage a password_file (CPython), like mosquitto_passwd. Its documented name is
`python -m broker.passwd` (broker/passwd.py runs this module's main):

    python -m broker.passwd [-c] FILE USER                 add or update USER (asks twice)
    python -m broker.passwd [-c] -b FILE USER PASSWORD     the same, password on the command line
    python -m broker.passwd -D FILE USER                   delete USER

FILE is created when missing; -c creates or overwrites it (only USER is kept). Other lines,
comments included, are kept as they are. The hash format is in docs/configuration.md.
"""
import os
import sys
from binascii import b2a_base64

from broker.auth import DEFAULT_ITERATIONS, digest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List, Optional

USAGE = """usage: python -m broker.passwd [-c] FILE USER
       python -m broker.passwd [-c] -b FILE USER PASSWORD
       python -m broker.passwd -D FILE USER
  -c  create FILE (overwrite it if it exists)
  -b  batch mode: take the password from the command line
  -D  delete USER from FILE
"""


def entry(user: str, password: bytes, salt: "Optional[bytes]" = None,
          iterations: int = DEFAULT_ITERATIONS) -> str:
    """One password_file line (without the newline): user:$sha256$ITERATIONS$SALT$HASH."""
    if salt is None:
        salt = os.urandom(12)
    h = digest(password, salt, iterations)
    return "%s:$sha256$%d$%s$%s" % (user, iterations, _b64(salt), _b64(h))


def _b64(data: bytes) -> str:
    return b2a_base64(data, newline=False).decode()


def _read_lines(path: str) -> "List[str]":
    try:
        with open(path, "rb") as f:
            return f.read().decode().split("\n")
    except FileNotFoundError:
        return []


def update(path: str, user: str, password: "Optional[bytes]", create: bool = False) -> bool:
    """Set (password bytes) or delete (password None) user in the file at path; returns False
    when deleting a user that is not there."""
    lines = [] if create else _read_lines(path)
    while lines and not lines[-1].strip():
        lines.pop()
    out = []
    found = False
    for raw in lines:
        s = raw.strip()
        if s and s[0] != "#" and s.split(":", 1)[0] == user:
            if password is not None and not found:
                out.append(entry(user, password))
            found = True
            continue
        out.append(raw)
    if password is not None and not found:
        out.append(entry(user, password))
    if password is None and not found:
        return False
    text = "\n".join(out) + "\n" if out else ""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(text.encode())
    os.replace(tmp, path)
    return True


def main(argv: "List[str]") -> int:
    create = batch = delete = False
    args = []
    for a in argv:
        if a in ("-h", "--help"):
            sys.stdout.write(USAGE)
            return 0
        if a == "-c":
            create = True
        elif a == "-b":
            batch = True
        elif a == "-D":
            delete = True
        elif a.startswith("-") and len(a) > 1:
            sys.stderr.write("Error: unknown option '%s'\n%s" % (a, USAGE))
            return 1
        else:
            args.append(a)
    want = 3 if batch else 2
    if len(args) != want or (delete and (batch or create)):
        sys.stderr.write(USAGE)
        return 1
    path, user = args[0], args[1]
    if not user or ":" in user or user != user.strip():
        sys.stderr.write("Error: a username must be non-empty, without ':' or surrounding"
                         " spaces\n")
        return 1
    if delete:
        if not update(path, user, None):
            sys.stderr.write("Error: user '%s' is not in %s\n" % (user, path))
            return 1
        return 0
    if batch:
        password = args[2]
    else:
        import getpass
        password = getpass.getpass("Password: ")
        if getpass.getpass("Reenter password: ") != password:
            sys.stderr.write("Error: the passwords do not match\n")
            return 1
    update(path, user, password.encode(), create)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
