"""The reader a port gives broker.config, which parses text and opens no file: the files a
configuration names (password_file, acl_file, TLS certificates and keys) are read with it. Used
by the CPython port and the tests; the MicroPython port's launch defines the same in place."""


def read_file(path: str) -> bytes:
    """The bytes of the file at path; OSError when it cannot be read."""
    with open(path, "rb") as f:
        return f.read()
