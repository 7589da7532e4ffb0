"""Socket files of Unix-domain listeners, shared by both ports (os.stat as a tuple, os.remove:
the spelling CPython and MicroPython's unix port both have)."""
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List, Tuple


def remove_unix_files(files: "List[Tuple[str, int, int]]") -> None:
    """Remove the socket files a listener made, (path, st_dev, st_ino) each, only while the
    path is still that file (another broker may have replaced it since); forget them."""
    for path, dev, ino in files:
        try:
            st = os.stat(path)
            if st[2] == dev and st[1] == ino:
                os.remove(path)
        except OSError:
            pass
    del files[:]
