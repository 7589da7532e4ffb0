"""A filesystem in the heap for MicroPython's QEMU port, which has none: the core tests write
their configuration files under /tmp. Frozen into the firmware of make test-arm only.

    import ramfs
    ramfs.mount()       # at "/", every directory already there
"""
import io
import vfs

_DIR = 0o040000
_FILE = 0o100000


class _File:
    """A file open for writing (kept when closed) or for reading."""

    def __init__(self, fs, path, mode):
        self.fs = fs
        self.path = path
        self.text = "b" not in mode
        data = fs.files.get(path, b"") if "a" in mode or "r" in mode else b""
        self.buf = io.BytesIO(data)
        if "a" in mode:
            self.buf.seek(len(data))
        self.writing = "r" not in mode or "+" in mode

    def write(self, data):
        return self.buf.write(data.encode() if isinstance(data, str) else data)

    def read(self, n=-1):
        data = self.buf.read() if n < 0 else self.buf.read(n)
        return data.decode() if self.text else data

    def readinto(self, b):
        return self.buf.readinto(b)

    def readline(self):
        line = self.buf.readline()
        return line.decode() if self.text else line

    def __iter__(self):
        return self

    def __next__(self):
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def close(self):
        if self.writing:
            self.fs.files[self.path] = self.buf.getvalue()
            self.writing = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class RamFS:
    def __init__(self):
        self.files = {}
        self.cwd = "/"

    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def open(self, path, mode):
        if "r" in mode and "+" not in mode and path not in self.files:
            raise OSError(2)
        return _File(self, path, mode)

    def stat(self, path):
        if path in self.files:
            return (_FILE, 0, 0, 0, 0, 0, len(self.files[path]), 0, 0, 0)
        prefix = path.rstrip("/") + "/"
        if path == "/" or path in ("/tmp", "/.frozen") or any(
                p.startswith(prefix) for p in self.files):
            return (_DIR, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        raise OSError(2)

    def remove(self, path):
        if path not in self.files:
            raise OSError(2)
        del self.files[path]

    def rename(self, old, new):
        self.files[new] = self.files.pop(old)

    def ilistdir(self, path):
        if self.stat(path)[0] != _DIR:  # OSError(2) for none, as a real filesystem
            raise OSError(20)
        prefix = path.rstrip("/") + "/"
        names = []
        for p in self.files:
            if p.startswith(prefix):
                name = p[len(prefix):].split("/")[0]
                if name not in names:
                    names.append(name)
        for name in names:
            yield (name, _FILE if prefix + name in self.files else _DIR, 0)

    def mkdir(self, path):
        pass

    def rmdir(self, path):
        pass

    def chdir(self, path):
        self.cwd = path

    def getcwd(self):
        return self.cwd

    def statvfs(self, path):
        return (512, 512, 0, 0, 0, 0, 0, 0, 0, 255)


def mount():
    vfs.mount(RamFS(), "/")
