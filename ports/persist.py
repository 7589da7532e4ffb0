"""The journal's file, for both ports (what is in it: broker.persist). Loaded once before the
first client is accepted; at each save point what changed is appended, or, when the journal
has grown past twice the state it last held whole, the whole state is written to NAME.new,
flushed, and renamed over NAME. A file system that cannot rename over a file (FAT) gets NAME
removed first: the loader then finds only NAME.new, complete, and takes it. A NAME.new beside
NAME is a compaction cut off before its rename, and goes.

A save that fails (a full or read-only file system, or a heap too full) is logged once; the
broker keeps serving from RAM, keeps its marks, and tries again, whole, at the next save
point. One that fails at shutdown is logged with what it loses: there is no next one."""
import os

from broker.bytesops import const

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, List
    from broker.engine import Broker

_LOG_ERR = const(0x01)
_LOG_NOTICE = const(0x04)
_LOG_INFO = const(0x08)
_CLEAN = const(0)
_TORN = const(1)


def _size(path: str) -> int:
    try:
        return os.stat(path)[6]
    except OSError:
        return -1


def _reader(f: "Any") -> "Callable[[bytearray, int, int], int]":
    def readinto(buf: "Any", off: int, n: int) -> int:
        return f.readinto(memoryview(buf)[off:off + n]) or 0
    return readinto


def _writer(f: "Any") -> "Callable[[Any, int, int], None]":
    def write(buf: "Any", off: int, n: int) -> None:
        if off == 0 and n == len(buf):
            f.write(buf)
        else:
            f.write(memoryview(buf)[off:off + n])
    return write


def _sync(f: "Any") -> None:
    f.flush()
    fsync = getattr(os, "fsync", None)  # (not on MicroPython: closing the file commits it)
    if fsync is not None:
        fsync(f.fileno())


class Store:
    def __init__(self, b: "Broker", log: "Callable[[int, str], None]",
                 bridges: "List[Any]") -> None:
        p = b.config.persistence
        assert p is not None
        self.path = p.persistence_location + p.persistence_file
        self.b = b
        self.log = log
        self.bridges = bridges
        self.failing = False

    def load(self) -> None:
        """The state of the last complete save, before the first client is accepted. A file
        that cannot be trusted is set aside (NAME.damaged-N) with one line, never fatal."""
        from broker import persist  # with `persistence true` only
        b = self.b
        path = self.path
        new = path + ".new"
        try:
            if _size(new) >= 0:
                if _size(path) < 0:
                    os.rename(new, path)  # a compaction that removed NAME and stopped there
                else:
                    os.remove(new)  # a compaction cut off before its rename: NAME holds it
        except OSError:
            pass  # a read-only file system: NAME.new stays, as it would be read
        size = _size(path)
        verdict = [_CLEAN, 0, "", {}, 0]  # type: List[Any]
        counts = [0, 0]
        if size >= 0:
            try:
                with open(path, "rb") as f:
                    verdict = persist.check(_reader(f), size)
                    if verdict[1]:
                        f.seek(persist.HEADER)
                        counts = persist.load(b, _reader(f), verdict, self.bridges)
            except MemoryError:  # what fits stays; the file is kept, set aside
                verdict = [persist.DAMAGED, 0, "not enough memory to load it all"]
            except Exception as e:  # whatever was applied stays
                verdict = [persist.DAMAGED, 0, repr(e)]
        c = persist.watch(b)
        persist.bridge_sessions(b, self.bridges)
        if size < 0:
            self.log(_LOG_NOTICE, "Persistence: no %s yet, starting empty." % path)
            return
        kind = verdict[0]
        if kind == _CLEAN:
            c.size = size
            c.whole = verdict[4]  # a journal of many versions is compacted at the first save
        elif kind == _TORN:
            self.log(_LOG_NOTICE, "Persistence: the last save to %s was cut off (%s); the save"
                     " before it is loaded." % (path, verdict[2]))
        else:
            aside = path + ".damaged-1"
            n = 1
            while _size(aside) >= 0:
                n += 1
                aside = "%s.damaged-%d" % (path, n)
            try:
                os.rename(path, aside)
            except OSError as e:
                aside = "%s, which cannot be renamed (%s)" % (path, e)
            self.log(_LOG_ERR, "Persistence: %s cannot be trusted (%s): kept as %s; starting"
                     " with what it held before that." % (path, verdict[2], aside))
        self.log(_LOG_NOTICE, "Persistence: loaded %d retained messages and %d sessions from %s."
                 % (counts[0], counts[1], path))

    def tick(self) -> None:
        """A save point when autosave_interval says so (the port calls this every turn)."""
        c = self.b.ledger.changes
        if c.due(self.b):
            self.save()

    def save(self, final: bool = False) -> None:
        """Write what changed since the last save; nothing when nothing changed. final: the
        save at shutdown, which has no next save point to try again at."""
        from broker import persist
        b = self.b
        c = b.ledger.changes
        if not c.pending():
            return
        whole = c.compact_now()
        path = self.path
        try:
            if whole:
                new = path + ".new"
                with open(new, "wb") as f:
                    n = persist.save(b, _writer(f), True, self.bridges)
                    _sync(f)
                try:
                    os.rename(new, path)
                except OSError:  # a file system that does not rename over a file
                    os.remove(path)
                    os.rename(new, path)
            else:
                with open(path, "ab") as f:
                    n = persist.save(b, _writer(f), False, self.bridges)
                    _sync(f)
        except BaseException as e:  # (Ctrl-C as well as the file system or the heap)
            c.size = 0  # what an append left behind is not to be appended to
            c.last = b.seconds
            if not isinstance(e, (OSError, MemoryError)):
                raise
            if final:
                self.log(_LOG_ERR, "Persistence: cannot save to %s at shutdown (%s): what"
                         " changed since the last save is lost." % (path, e))
            elif not self.failing:
                self.failing = True
                self.log(_LOG_ERR, "Persistence: cannot save to %s (%s); serving from memory,"
                         " trying again at the next save point." % (path, e))
            return
        if self.failing:
            self.failing = False
            self.log(_LOG_NOTICE, "Persistence: saving to %s again." % path)
        persist.saved(b, whole, n)
        self.log(_LOG_INFO, "Saving in-memory database to %s (%s, %d bytes)."
                 % (path, "whole" if whole else "changes", n))


def open_store(b: "Broker", log: "Callable[[int, str], None]", links: "Any") -> Store:
    """The store of a server (its bridges' links, or None), its file loaded."""
    store = Store(b, log, [link.bridge for link in links.links] if links is not None else [])
    store.load()
    return store
