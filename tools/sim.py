"""The virtual board (BOARD=sim): MicroPython behind a pseudo-terminal that mpremote opens as
its serial port.

    .venv/bin/python tools/sim.py start [--dir DIR] [--heap SIZE] [--romfs SIZE]  # device path
    .venv/bin/python tools/sim.py stop  [--dir DIR]                 # make sim-stop
    .venv/bin/python tools/sim.py status [--dir DIR]

DIR (default build/sim, or $SIM_DIR) holds the board's flash (DIR/flash, mounted as "/" on the
board), the state file sim.json (host pid, device) and the log sim.log. `start` leaves a small
host process running in its own session: it owns the pty's master side and one child,
`micropython -X heapsize=SIZE tools/sim_board.py`, whose REPL is written in MicroPython. The
host forwards the terminal's bytes to the child, turns Ctrl-C into SIGINT (the child's
KeyboardInterrupt, as a board's USB interrupt character does), writes the child's output back
with LF turned into CR LF, and starts a fresh child when the board resets (soft reset,
machine.reset(), or a crash), as a board restarts its interpreter. It stops by itself when its
state file goes (make clean removes build/).

The virtual firmware has a ROMFS partition of 256 KB (DIR/romfs.img, created erased) unless
--romfs or $SIM_ROMFS says another size, or 0 for firmware without one: `make flash` then
deploys the broker's modules as a ROMFS image, as on a board whose firmware has the partition.
With SIM_FROZEN=DIR the virtual firmware has DIR's modules frozen in (tools/sim_board.py), as
`make firmware` builds one.
"""
from __future__ import annotations

import argparse
import ctypes
import fcntl
import json
import os
import pty
import selectors
import signal
import subprocess
import sys
import time
import tty
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"
FIRMWARE = ROOT / "tools" / "sim_board.py"
DEFAULT_DIR = ROOT / "build" / "sim"
DEFAULT_HEAP = "192K"
DEFAULT_ROMFS = 256 * 1024
ROMFS_FILE = "romfs.img"
STATE = "sim.json"

EXIT_SOFT_FRIENDLY = 3  # as in tools/sim_board.py
EXIT_SOFT_RAW = 4
EXIT_HARD = 5

CTRL_C = 3
OUTPUT_CAP = 64 * 1024  # terminal output kept while nobody reads; older bytes are dropped
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


class SimError(Exception):
    pass


def parse_size(text: str) -> int:
    """'128K', '1M' or a number of bytes; SimError when it is none of these."""
    t = text.strip().upper()
    scale = {"K": 1024, "M": 1024 * 1024}.get(t[-1:], 1)
    try:
        n = int(t[:-1] if scale > 1 else t)
    except ValueError:
        raise SimError("%r is not a size (such as 128K)" % text) from None
    if n < 0:
        raise SimError("%r is not a size (such as 128K)" % text)
    return n * scale


def romfs_size(text: "str | None") -> int:
    """The ROMFS partition's size from --romfs or $SIM_ROMFS: unset means 256 KB, 0 none."""
    if text is None:
        text = os.environ.get("SIM_ROMFS", "")
    return parse_size(text) if text.strip() else DEFAULT_ROMFS


# --------------------------------------------------------------------------------------------
# The host process


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the host dies, so no interpreter outlives it."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _nonblocking(fd: int) -> None:
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)


class Host:
    def __init__(self, root: Path, heap: str, romfs: int = 0) -> None:
        self.root = root
        self.flash = root / "flash"
        # The unix runtime cannot map the ROMFS partition from flash: the firmware holds it in
        # one bytearray of the heap (tools/sim_board.py), so the heap grows by the partition's
        # size and the broker keeps the heap it has on a board.
        self.heap = "%d" % (parse_size(heap) + romfs)
        self.romfs = root / ROMFS_FILE if romfs else None
        if self.romfs is not None and (not self.romfs.is_file()
                                       or self.romfs.stat().st_size != romfs):
            self.romfs.write_bytes(b"\xff" * romfs)  # erased flash
        self.master, self.slave = pty.openpty()
        # raw: no echo, no line editing, no signals from Ctrl-C; the board does all that
        tty.setraw(self.slave)
        # The host keeps the slave side open too, so the master never sees EOF (EIO) when
        # mpremote closes the port between two commands.
        self.device = os.ttyname(self.slave)
        _nonblocking(self.master)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.master, selectors.EVENT_READ, "tty")
        self.child = None  # type: subprocess.Popen[bytes] | None
        self.to_child = bytearray()
        self.to_tty = bytearray()
        self.ready = False
        self.pending_interrupt = False
        self.last_cr = False
        self.stopping = False
        self.wake_r, self.wake_w = os.pipe()
        _nonblocking(self.wake_w)
        self.sel.register(self.wake_r, selectors.EVENT_READ, "wake")
        self.fds = {}  # type: dict[str, int]

    # -- the child ---------------------------------------------------------------------------

    def spawn(self, mode: str) -> None:
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        ctl_r, ctl_w = os.pipe()
        _nonblocking(in_r)  # the firmware polls, then reads what is there
        _nonblocking(in_w)
        _nonblocking(out_r)
        self.child = subprocess.Popen(
            [str(MICROPYTHON), "-X", "heapsize=" + self.heap, str(FIRMWARE), str(self.flash),
             mode, str(ctl_w)] + ([str(self.romfs)] if self.romfs is not None else []),
            stdin=in_r, stdout=out_w, stderr=out_w, pass_fds=(ctl_w,), cwd=str(self.flash),
            preexec_fn=_die_with_parent)
        for fd in (in_r, out_w, ctl_w):
            os.close(fd)
        self.fds = {"in": in_w, "out": out_r, "ctl": ctl_r}
        self.sel.register(out_r, selectors.EVENT_READ, "out")
        self.sel.register(ctl_r, selectors.EVENT_READ, "ctl")
        self.ready = False
        self.write_state()

    def unwatch(self, fd: int) -> None:
        try:
            self.sel.unregister(fd)
        except KeyError:
            pass

    def reap(self) -> int:
        """Collect the child's last output and its exit status."""
        assert self.child is not None
        status = self.child.wait()
        out = self.fds["out"]
        while True:
            try:
                data = os.read(out, 65536)
            except (BlockingIOError, InterruptedError):
                break
            if not data:
                break
            self.output(data)
        for fd in self.fds.values():
            self.unwatch(fd)
            os.close(fd)
        self.fds = {}
        self.child = None
        return status

    def interrupt(self) -> None:
        if self.child is not None and self.ready:
            self.child.send_signal(signal.SIGINT)
        else:
            self.pending_interrupt = True

    # -- bytes both ways ---------------------------------------------------------------------

    def from_tty(self, data: bytes) -> None:
        for part in data.split(bytes((CTRL_C,)))[:-1]:
            self.to_child += part
            self.interrupt()
        self.to_child += data[data.rfind(bytes((CTRL_C,))) + 1:]

    def output(self, data: bytes) -> None:
        """A board's stdout is "cooked": LF goes out as CR LF (a CR LF stays as it is)."""
        out = bytearray()
        for b in data:
            if b == 10 and not self.last_cr:
                out += b"\r"
            out.append(b)
            self.last_cr = b == 13
        self.to_tty += out
        if len(self.to_tty) > OUTPUT_CAP:
            del self.to_tty[:len(self.to_tty) - OUTPUT_CAP]

    def flush(self) -> None:
        if self.to_tty:
            try:
                n = os.write(self.master, self.to_tty)
                del self.to_tty[:n]
            except BlockingIOError:
                pass
        fd = self.fds.get("in")
        if fd is not None and self.to_child:
            try:
                n = os.write(fd, self.to_child)
                del self.to_child[:n]
            except BlockingIOError:
                pass
            except BrokenPipeError:
                pass  # the child is ending; its successor gets the bytes

    # -- the loop ----------------------------------------------------------------------------

    def write_state(self) -> None:
        state = {"pid": os.getpid(), "device": self.device,
                 "child": self.child.pid if self.child else None}
        tmp = self.root / (STATE + ".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(self.root / STATE)

    def on_signal(self, signum: int, frame: object) -> None:
        self.stopping = True
        try:
            os.write(self.wake_w, b"x")
        except OSError:
            pass

    def serve(self) -> None:
        signal.signal(signal.SIGTERM, self.on_signal)
        signal.signal(signal.SIGINT, self.on_signal)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        self.spawn("friendly")
        crashes = []  # type: list[float]
        checked = time.monotonic()
        while not self.stopping:
            if time.monotonic() - checked > 1.0:
                checked = time.monotonic()
                if not (self.root / STATE).exists():
                    break  # make clean took the state file: nobody could stop this board
            for key, _ in self.sel.select(0.1 if self.to_child or self.to_tty else 1.0):
                what = key.data
                if what == "tty":
                    try:
                        data = os.read(self.master, 65536)
                    except (BlockingIOError, InterruptedError):
                        continue
                    self.from_tty(data)
                elif what == "out":
                    try:
                        data = os.read(key.fd, 65536)
                    except (BlockingIOError, InterruptedError):
                        continue
                    if data:
                        self.output(data)
                    else:
                        self.unwatch(key.fd)  # the child closed stdout: it is ending
                elif what == "ctl":
                    try:
                        data = os.read(key.fd, 16)
                    except (BlockingIOError, InterruptedError):
                        continue
                    if b"K" in data:
                        self.ready = True
                        if self.pending_interrupt:
                            self.pending_interrupt = False
                            self.interrupt()
                    if not data:
                        self.unwatch(key.fd)
                elif what == "wake":
                    os.read(self.wake_r, 64)
            if self.child is not None and self.child.poll() is not None:
                status = self.reap()
                if status == EXIT_SOFT_RAW:
                    mode = "raw"
                elif status in (EXIT_SOFT_FRIENDLY, EXIT_HARD):
                    mode = "friendly"
                else:
                    self.output(b"\n[virtual board: firmware ended with status %d, restarting]\n"
                                % status)
                    now = time.monotonic()
                    crashes = [t for t in crashes if now - t < 10] + [now]
                    if len(crashes) > 5:
                        time.sleep(1)  # a crash loop does not eat the CPU
                    mode = "friendly"
                self.pending_interrupt = False
                self.spawn(mode)
            self.flush()
        self.shutdown()

    def shutdown(self) -> None:
        child = self.child
        if child is not None:
            child.terminate()
            try:
                child.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        try:
            (self.root / STATE).unlink()
        except FileNotFoundError:
            pass


# --------------------------------------------------------------------------------------------
# start / stop / status


def _alive(pid: int) -> bool:
    """True when pid is a running sim host (not a recycled pid)."""
    try:
        cmdline = Path("/proc/%d/cmdline" % pid).read_bytes().split(b"\0")
    except OSError:
        return False
    try:
        with open("/proc/%d/stat" % pid) as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False
    except OSError:
        return False
    return any(arg.endswith(b"sim.py") for arg in cmdline) and b"serve" in cmdline


def read_state(root: Path) -> dict | None:
    """The running simulator's state, or None."""
    try:
        state = json.loads((root / STATE).read_text())
    except (OSError, ValueError):
        return None
    if not _alive(int(state.get("pid", 0))):
        return None
    return state


def start(root: Path, heap: str = DEFAULT_HEAP, romfs: "str | None" = None) -> dict:
    """Start the virtual board unless it runs already; return its state. `romfs`: the ROMFS
    partition's size (default $SIM_ROMFS, else 256K; 0 for none)."""
    state = read_state(root)
    if state is not None:
        return state
    if not MICROPYTHON.exists():
        raise SimError("%s is missing: run make setup" % MICROPYTHON)
    parse_size(heap)
    partition = romfs_size(romfs)
    (root / "flash").mkdir(parents=True, exist_ok=True)
    try:
        (root / STATE).unlink()
    except FileNotFoundError:
        pass
    with open(root / "sim.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "serve", "--dir", str(root),
             "--heap", heap, "--romfs", str(partition)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SimError("the virtual board did not start: see %s" % (root / "sim.log"))
        state = read_state(root)
        if state is not None:
            return state
        time.sleep(0.02)
    proc.kill()
    raise SimError("the virtual board did not start within %.0f s" % START_TIMEOUT)


def stop(root: Path) -> bool:
    """Stop the virtual board and its interpreter; False when none was running."""
    state = read_state(root)
    if state is None:
        return False
    pid = int(state["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT + 2
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)  # its interpreter dies with it (PR_SET_PDEATHSIG)
    try:
        (root / STATE).unlink()
    except FileNotFoundError:
        pass
    return True


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="tools/sim.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=("start", "stop", "status", "serve"))
    ap.add_argument("--dir", default=os.environ.get("SIM_DIR") or str(DEFAULT_DIR),
                    help="state and flash directory (default build/sim, or $SIM_DIR)")
    ap.add_argument("--heap", default=DEFAULT_HEAP, help="MicroPython heap (default 192K)")
    ap.add_argument("--romfs", default=None,
                    help="ROMFS partition size (default $SIM_ROMFS, else 256K; 0 for none)")
    args = ap.parse_args(argv)
    root = Path(args.dir).resolve()
    if args.command == "serve":
        root.mkdir(parents=True, exist_ok=True)
        Host(root, args.heap, romfs_size(args.romfs)).serve()
        return 0
    try:
        if args.command == "start":
            state = start(root, args.heap, args.romfs)
            print(state["device"])
        elif args.command == "stop":
            if stop(root):
                print("sim: stopped the virtual board")
            else:
                print("sim: no virtual board running (%s)" % root)
        else:
            state = read_state(root)
            if state is None:
                print("sim: not running")
                return 1
            print("sim: running on %s (host pid %d)" % (state["device"], state["pid"]))
    except SimError as e:
        print("sim: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
