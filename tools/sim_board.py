"""The virtual board's firmware: MicroPython's REPL, written in MicroPython.

    micropython -X heapsize=N tools/sim_board.py FLASH_DIR MODE CTL_FD [ROMFS_FILE]

Run by tools/sim.py, which owns the pseudo-terminal: it passes what the terminal receives on
stdin (except Ctrl-C, which it turns into SIGINT once this script said it can take one) and
writes stdout/stderr back to the terminal. FLASH_DIR is mounted as "/", so the board's files,
sys.path (['', '.frozen', '/lib']) and mpremote's paths look as on a Pico W.

ROMFS_FILE, when given, is the firmware's ROMFS partition (its size is the partition's): the
board then has vfs.rom_ioctl as MicroPython 1.25+ firmware built with ROMFS has it, so that
`mpremote romfs query|deploy` work, and at boot a valid image in it is mounted with vfs.VfsRom
at /rom, with /rom and /rom/lib on sys.path after '' as such firmware puts them.

With SIM_FROZEN=DIR in its environment (tools/sim.py passes it on), the firmware has DIR's
modules frozen in, as `make firmware` builds one: DIR is mounted at /.frozen, which takes
".frozen"'s place on sys.path (the unix port's own ".frozen" is its binary's), and a main.py
there runs at boot instead of the filesystem's, as a board runs a frozen main.py.

MODE says how this interpreter starts, as after a board's reset: "friendly" runs boot.py,
main.py, then the friendly REPL; "raw" runs boot.py and enters the raw REPL (a soft reset
asked from the raw REPL). A soft reset, sys.exit() or machine.soft_reset() ends this process
with EXIT_SOFT_*, machine.reset() with EXIT_HARD; tools/sim.py then starts a fresh one.
"""
import gc
import os
import select
import sys

EXIT_SOFT_FRIENDLY = 3
EXIT_SOFT_RAW = 4
EXIT_HARD = 5

CTRL_A = 1
CTRL_B = 2
CTRL_C = 3
CTRL_D = 4
CTRL_E = 5
BACKSPACE = (8, 127)

# Raw-paste flow control: the host may send this many bytes before the next b"\x01". Its two
# bytes (little-endian) hold no CR or LF, which tools/sim.py would translate.
PASTE_WINDOW = 512

FROZEN = "/.frozen"

BANNER = 'MicroPython v%s; virtual board (unix port, %s)\r\nType "help()" for more information.\r\n'


class Reset(Exception):
    """Leave the REPL and end this process with `status`."""
    def __init__(self, status):
        self.status = status


class Machine:
    """`machine` as a board has it: reset() and soft_reset() restart the interpreter; the
    rest comes from the unix port's module."""
    def __init__(self, real):
        self._real = real

    def reset(self):
        raise SystemExit(EXIT_HARD)

    def soft_reset(self):
        raise SystemExit(EXIT_SOFT_FRIENDLY)

    def __getattr__(self, name):
        return getattr(self._real, name)


class Vfs:
    """`vfs` with rom_ioctl: registered in sys.modules, which an import looks at before the
    built-in modules; everything else is the unix port's module."""
    def __init__(self, real, rom):
        self._real = real
        self.rom_ioctl = rom.ioctl

    def __getattr__(self, name):
        return getattr(self._real, name)


class RomPartition:
    """One ROMFS partition kept in a file. A board maps its partition from flash; the unix
    runtime has no such memory, so the partition is read into one bytearray of the heap, and
    rom_ioctl(2) gives a memoryview of it as firmware gives one of the flash. Erasing and
    writing change both the bytearray and the file."""
    BLOCK_SIZE = 4096
    MIN_WRITE = 4
    EINVAL = 22

    def __init__(self, path):
        # opened before FLASH_DIR becomes "/", which hides the host's paths
        self.file = open(path, "r+b")
        self.mem = bytearray(self.file.seek(0, 2))
        self.file.seek(0)
        self.file.readinto(self.mem)

    def _store(self, offset, data):
        self.mem[offset:offset + len(data)] = data
        self.file.seek(offset)
        self.file.write(data)
        self.file.flush()

    def ioctl(self, op, *args):
        # MicroPython's MP_VFS_ROM_IOCTL_* requests: 1 count, 2 segment, 3 prepare
        # (erase), 4 write, 5 end of writing, 6 erase block size
        if op == 1:
            return 1
        if not args or args[0] != 0:
            return -self.EINVAL
        if op == 2:
            return memoryview(self.mem)
        if op == 3:
            offset, length = (0, args[1]) if len(args) == 2 else (args[1], args[2])
            if offset < 0 or offset + length > len(self.mem):
                return -self.EINVAL
            self._store(offset, b"\xff" * length)
            return self.MIN_WRITE
        if op == 4:
            offset, data = args[1], args[2]
            if offset < 0 or offset + len(data) > len(self.mem):
                return -self.EINVAL
            self._store(offset, data)
            return 0
        if op == 5:
            return 0
        if op == 6:
            return self.BLOCK_SIZE
        return -self.EINVAL

    def mount(self):
        """Mount the image at /rom if the partition holds one, as firmware does at boot."""
        if self.mem[:3] != b"\xd2\xcd\x31":
            return False
        import vfs
        try:
            vfs.mount(vfs.VfsRom(memoryview(self.mem)), "/rom")
        except OSError as e:
            write("ROMFS: not mounted (%s)\r\n" % e)
            return False
        return True


class Stdin:
    """Bytes from the host one at a time; stdin is non-blocking (tools/sim.py sets it so),
    poll() waits. An idle REPL spends its time in poll(), so that is where a Ctrl-C's
    KeyboardInterrupt lands, with no byte in flight."""
    def __init__(self):
        self.poller = select.poll()
        self.poller.register(sys.stdin, select.POLLIN)
        self.buf = bytearray(256)
        self.n = 0
        self.pos = 0

    def getc(self):
        while self.pos >= self.n:
            self.poller.poll(-1)
            n = sys.stdin.buffer.readinto(self.buf)
            if n == 0:
                raise Reset(0)  # the host went away
            if n:
                self.n = n
                self.pos = 0
        c = self.buf[self.pos]
        self.pos += 1
        return c


def write(s):
    sys.stdout.write(s)


def write_bytes(b):
    sys.stdout.buffer.write(b)


class Board:
    def __init__(self, mode):
        self.raw = mode == "raw"
        self.stdin = Stdin()
        self.globals = {"__name__": "__main__"}

    # -- running code ------------------------------------------------------------------------

    def run(self, code, raw):
        """Compile and run `code` (bytes) in __main__'s globals. In the raw REPL, stdout and
        the traceback are each ended by Ctrl-D, as mpremote expects."""
        try:
            exec(compile(code, "<stdin>", "exec" if raw else "single"), self.globals)
        except SystemExit as e:
            status = e.args[0] if e.args and e.args[0] in (EXIT_HARD, EXIT_SOFT_RAW) \
                else (EXIT_SOFT_RAW if raw else EXIT_SOFT_FRIENDLY)
            if raw:
                write("\x04\x04")
            raise Reset(status)
        except BaseException as e:  # noqa: B036 - a board's REPL reports everything
            if raw:
                write("\x04")
            sys.print_exception(e, sys.stdout)
            if raw:
                write("\x04")
            return
        finally:
            gc.collect()
        if raw:
            write("\x04\x04")

    def run_file(self, name):
        if FROZEN in sys.path:
            try:
                os.stat(FROZEN + "/" + name)
                name = FROZEN + "/" + name
            except OSError:
                pass
        try:
            os.stat(name)
        except OSError:
            return
        with open(name, "rb") as f:
            code = f.read()
        try:
            exec(compile(code, name, "exec"), self.globals)
        except SystemExit as e:
            raise Reset(e.args[0] if e.args and e.args[0] == EXIT_HARD else EXIT_SOFT_FRIENDLY)
        except BaseException as e:  # noqa: B036
            sys.print_exception(e, sys.stdout)
        finally:
            gc.collect()

    def soft_reset(self, raw):
        raise Reset(EXIT_SOFT_RAW if raw else EXIT_SOFT_FRIENDLY)

    # -- the raw REPL ------------------------------------------------------------------------

    def raw_repl(self):
        write("raw REPL; CTRL-B to exit\r\n")
        line = bytearray()
        while True:
            write(">")
            line = bytearray()
            while True:
                c = self.getc()
                if c == CTRL_A:
                    if len(line) == 2 and line[0] == CTRL_E:
                        self.raw_paste(line[1])
                        break
                    return True  # reset the raw REPL: banner again
                if c == CTRL_B:
                    write("\r\n")
                    self.raw = False
                    return False
                if c == CTRL_C:
                    line = bytearray()
                    continue
                if c == CTRL_D:
                    write("OK")
                    if not line:
                        write("\r\n")
                        self.soft_reset(True)
                    self.run(bytes(line), True)
                    break
                line.append(c)

    def raw_paste(self, kind):
        if kind != ord("A"):
            write_bytes(b"R\x00")
            return
        write_bytes(b"R\x01" + bytes((PASTE_WINDOW & 0xFF, PASTE_WINDOW >> 8)))
        code = bytearray()
        remain = PASTE_WINDOW
        while True:
            c = self.stdin.getc()
            if c == CTRL_D:
                write("\x04")
                break
            code.append(c)
            remain -= 1
            if remain == 0:
                write("\x01")
                remain = PASTE_WINDOW
        self.run(bytes(code), True)

    def getc(self):
        """The next byte for a REPL line; a Ctrl-C (a KeyboardInterrupt here) is CTRL_C."""
        try:
            return self.stdin.getc()
        except KeyboardInterrupt:
            return CTRL_C

    # -- the friendly REPL -------------------------------------------------------------------

    def friendly_repl(self):
        impl = sys.implementation
        version = "%d.%d.%d" % impl.version[:3]
        write(BANNER % (version, impl._machine.split()[0]))
        source = ""
        while True:
            write(">>> " if not source else "... ")
            line = bytearray()
            while True:
                c = self.getc()
                if c == CTRL_A:
                    write("\r\n")
                    self.raw = True
                    return
                if c == CTRL_B:
                    write("\r\n")
                    return
                if c == CTRL_C:
                    write("\r\n")
                    line = None
                    break
                if c == CTRL_D and not line and not source:
                    write("\r\n")
                    self.soft_reset(False)
                if c in (13, 10):
                    write("\r\n")
                    break
                if c in BACKSPACE:
                    if line:
                        line = line[:-1]
                        write("\x08 \x08")
                    continue
                if c >= 32:
                    line.append(c)
                    write(chr(c))
            if line is None:
                source = ""
                continue
            text = line.decode()
            if source and not text:
                self.run(source, False)
                source = ""
            elif source or text.endswith(":"):
                source += text + "\n"
            elif text:
                self.run(text, False)

    def repl(self):
        while True:
            try:
                if self.raw:
                    while self.raw_repl():
                        pass
                else:
                    self.friendly_repl()
            except KeyboardInterrupt:
                pass  # a Ctrl-C that came between two reads: start the REPL afresh


class Flash:
    """The board's file system: VfsPosix(DIR), but for rename. The unix port's VfsPosix builds
    each absolute path in one buffer of its own, so that rename("/a.new", "/a") renamed DIR/a
    to itself (ENOENT); a board's FAT or littlefs renames as asked, as this does."""
    def __init__(self, root):
        self.root = root
        self.vfs = os.VfsPosix(root)
        self.host = os.VfsPosix()

    def __getattr__(self, name):
        return getattr(self.vfs, name)

    def rename(self, old, new):
        if old.startswith("/"):
            old = self.root + old
        if new.startswith("/"):
            new = self.root + new
        self.host.rename(old, new)


def main():
    flash, mode, ctl = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rom = RomPartition(sys.argv[4]) if len(sys.argv) > 4 else None
    os.umount("/")
    os.mount(Flash(flash), "/")
    os.chdir("/")
    sys.path[:] = ["", ".frozen", "/lib"]
    frozen = os.getenv("SIM_FROZEN")
    if frozen:
        os.mount(os.VfsPosix(frozen), FROZEN)
        sys.path[1] = FROZEN
    if rom is not None:
        import vfs
        sys.modules["vfs"] = Vfs(vfs, rom)
        if rom.mount():
            sys.path[1:1] = ["/rom", "/rom/lib"]
    sys.argv[:] = []
    import machine
    sys.modules["machine"] = Machine(machine)
    board = Board(mode)
    with open(ctl, "wb") as f:
        f.write(b"K")  # from now on a Ctrl-C may come as SIGINT
    try:
        board.run_file("boot.py")
        if mode == "friendly":
            board.run_file("main.py")
        board.repl()
    except Reset as e:
        if e.status in (EXIT_SOFT_FRIENDLY, EXIT_SOFT_RAW):
            write("MPY: soft reboot\r\n")
        return e.status
    return 0


sys.exit(main())
