"""make test-arm MICROPY_DIR=DIR: the core tests on ARM machine code, MicroPython's QEMU port.

    .venv/bin/python tools/armtest.py [--micropy-dir DIR] [-k SUBSTRING] [-v]

The other runs of the core tests use the unix port (x86-64) and the webassembly port: neither is
the machine code of a board. This builds ports/qemu BOARD=MPS2_AN385 (a Cortex-M3, 32-bit, Thumb-2
like a Pico's Cortex-M0+ but for a few instructions) from MicroPython's source tree, with the
broker's modules frozen in as make firmware freezes them (`@micropython.native` kept, compiled by
mpy-cross -march=armv7m), and the core tests and tools/mptest.py frozen beside them: that port has
no filesystem to copy them to, and frozen tests cost the heap nothing. tools/qemu/ramfs.py gives
the tests a filesystem in the heap for the files they write.

It runs the firmware under Debian's qemu-system-arm with the serial port on a pseudo-terminal
(the port's Makefile's `-serial pty`), drives the raw REPL there, and prints the tests' output;
the exit status is mptest's. Then, in a fresh emulator, the asyncio front with MicroPython's own
asyncio (tools/qemu/aio_arm.py: no listener, in-process clients, a second task's cadence), and
the example application boards/examples/sensorhub serving make mem's scenario. NATIVE=0
freezes the modules without `@micropython.native`. Without MICROPY_DIR it says how to get the
sources and stops. tools/mem.py reads the same firmware for its frozen(ARM) column (arm_heap(),
tools/qemu/armmem.py).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when loaded with runpy
import firmware  # noqa: E402
from firmware import BUILD, JOBS, ROOT, FirmwareError, check_tree, mpy_cross, run, say  # noqa: E402
from mpy_source import board_modules, stage_frozen  # noqa: E402

OUT = BUILD / "arm"
BOARD = "MPS2_AN385"
MACHINE = "mps2-an385"
MANIFEST = ROOT / "tools" / "qemu" / "manifest.py"
TESTS = ROOT / "tests" / "core"
BOOT_TIMEOUT = 20.0
TEST_TIMEOUT = float(os.environ.get("MPTEST_TIMEOUT", "900"))
# The port's RAM is 4 MB; the core tests expect the heap of the unix port (2 MB on 64-bit), as
# some of them build packets of 200 KB and more.
HEAP = 2 * 1024 * 1024
# The example application (an asyncio main.py with hooks), frozen as sensorhub.py: make mem's
# app(ARM) column and a run of it here, its clients logging in as one of its users.
APP = ROOT / "boards" / "examples" / "sensorhub"
APP_LOGIN = ("phone", b"change-me-too")


def suite_module() -> str:
    """arm_suite.py: each frozen test module with its tests in the order its file defines them
    (mptest reads that from the file, which the firmware does not have)."""
    import mptest
    rows = []
    for path in sorted(TESTS.glob("test_*.py")):
        rows.append("    (%r, %r),\n" % (path.stem, tuple(mptest._defined_order(str(path)))))
    return '"""The frozen core tests (tools/armtest.py)."""\nTESTS = (\n%s)\n' % "".join(rows)


def frozen_set() -> list[tuple[Path, str]]:
    """The board's modules, and what only the tests import: broker.invariants, the password
    tool's entry(), the tests themselves and their runner."""
    files = board_modules()
    files += [(ROOT / "broker" / "invariants.py", "broker/invariants.py"),
              (ROOT / "ports" / "cpython" / "__init__.py", "ports/cpython/__init__.py"),
              (ROOT / "ports" / "cpython" / "passwd.py", "ports/cpython/passwd.py")]
    files += [(p, p.name) for p in sorted(TESTS.glob("*.py"))]
    files += [(ROOT / "tools" / "mptest.py", "mptest.py"),
              (ROOT / "tools" / "qemu" / "ramfs.py", "ramfs.py"),
              (ROOT / "tools" / "qemu" / "armmem.py", "armmem.py"),
              (ROOT / "tools" / "qemu" / "aio_arm.py", "aio_arm.py"),
              (APP / "main.py", APP.name + ".py"),
              (ROOT / "boards" / "common" / "boardmain.py", "boardmain.py")]
    return files


def build(tree: Path, native: bool = True) -> Path:
    """The QEMU firmware with the broker and the tests frozen in; its path."""
    changed = stage_frozen(frozen_set(), OUT / "frozen", native,
                           {"arm_suite.py": suite_module()})
    say("test-arm", "frozen set in build/arm/frozen (%s; %d files changed)" % (
        "@micropython.native kept" if native else "bytecode only", changed))
    exe = mpy_cross(tree)
    stamp = OUT / "build" / ".heap"
    if stamp.is_file() and stamp.read_text() != str(HEAP):
        shutil.rmtree(OUT / "build")  # its objects do not depend on the flags they had
    run(["make", "-C", str(tree / "ports" / "qemu"), "-j" + JOBS, "BOARD=" + BOARD,
         "BUILD=" + str(OUT / "build"), "FROZEN_MANIFEST=" + str(MANIFEST),
         "MICROPY_HEAP_SIZE=%d" % HEAP,
         "MICROPY_MPYCROSS=" + str(exe)], BUILD / "logs" / "firmware-arm.log")
    stamp.write_text(str(HEAP))
    return OUT / "build" / "firmware.elf"


class Qemu:
    """The firmware under qemu-system-arm, its serial port a pseudo-terminal driven as a raw
    REPL."""

    def __init__(self, elf: Path) -> None:
        import serial
        self.rest = b""
        self.proc = subprocess.Popen(
            ["qemu-system-arm", "-machine", MACHINE, "-nographic", "-monitor", "null",
             "-semihosting", "-serial", "pty", "-kernel", str(elf)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode(errors="replace")
        m = re.search(r"(/dev/pts/\d+)", line)
        if not m:
            self.close()
            raise FirmwareError("qemu-system-arm gave no serial device: %s" % line.strip())
        self.ser = serial.Serial(m.group(1), 115200, timeout=0.1)
        self.raw_repl()

    def read_until(self, marker: bytes, timeout: float, echo=None) -> bytes:  # type: ignore[no-untyped-def]
        """What the firmware wrote up to and including marker; what came after it in the same
        read is kept for the next call."""
        data = self.rest
        line = data  # (echoed too: it came after the last marker)
        deadline = time.monotonic() + timeout
        while marker not in data:
            if time.monotonic() > deadline:
                raise FirmwareError("no answer from the firmware under QEMU within %.0f s (last "
                                    "output: %r)" % (timeout, data[-200:]))
            chunk = self.ser.read(max(1, self.ser.in_waiting))
            data += chunk
            if echo is not None:
                line += chunk
                while b"\n" in line:
                    one, line = line.split(b"\n", 1)
                    echo(one.decode(errors="replace").rstrip("\r"))
        end = data.index(marker) + len(marker)
        self.rest = data[end:]
        return data[:end]

    def raw_repl(self) -> None:
        self.ser.write(b"\r\x03\x03")
        time.sleep(0.2)
        self.ser.reset_input_buffer()
        self.rest = b""
        self.ser.write(b"\r\x01")
        self.read_until(b"raw REPL; CTRL-B to exit\r\n>", BOOT_TIMEOUT)

    def exec(self, code: str, timeout: float, echo=None) -> tuple[str, str]:  # type: ignore[no-untyped-def]
        """Run code in the raw REPL: (its output, its error output)."""
        data = code.encode()
        for i in range(0, len(data), 256):
            self.ser.write(data[i:i + 256])
            time.sleep(0.01)
        self.ser.write(b"\x04")
        self.read_until(b"OK", BOOT_TIMEOUT)
        out = self.read_until(b"\x04", timeout, echo)[:-1]
        err = self.read_until(b"\x04", BOOT_TIMEOUT)[:-1]
        self.read_until(b">", BOOT_TIMEOUT)
        return out.decode(errors="replace"), err.decode(errors="replace")

    def close(self) -> None:
        if getattr(self, "ser", None) is not None:
            self.ser.close()
        self.proc.kill()
        self.proc.wait()


# A frozen module's __file__ is its bare file name: a test that gives a configuration its own
# file to read finds one there (and imports look only at the frozen modules).
RUN_TESTS = """\
import sys, ramfs
sys.path[:] = ['.frozen']
ramfs.mount()
import arm_suite, mptest
for name, _ in arm_suite.TESTS:
    f = open(name + '.py', 'w')
    f.write('# ' + name)
    f.close()
print('exit', mptest.run_suite(arm_suite.TESTS, %r, %r))
"""


# make mem's frozen(ARM) and app(ARM) columns (tools/qemu/armmem.py): the configuration written
# to the filesystem in the heap before the probe runs, so that its file costs nothing counted.
MEM_PROBE = """\
import sys, ramfs
sys.path[:] = ['.frozen']
ramfs.mount()
f = open(%r, 'w')
f.write(%r)
f.close()
del f
import armmem
armmem.run(%r, %d, %d, %r, %r, %r)
"""


def arm_heap(elf: Path, config: str, k: int = 0, scenario: bool = False,
             app: bool = False) -> dict[str, object]:
    """One run of the probe in a fresh QEMU: {"import": B, "idle": B} (bytes the broker holds),
    with scenario "scenario": "" when the standard scenario passed, else why not; k: the heap
    in KB the broker gets (0: all of HEAP). app: the example application instead of the bare
    broker (config its broker.conf; "idle" only, what the application holds once started), the
    scenario served while its tasks run, then its own checks (armmem.app_checks)."""
    qemu = Qemu(elf)
    try:
        # (the application reads broker.conf beside it, as on a board)
        path = "broker.conf" if app else "/broker.conf"
        probe = MEM_PROBE % (path, config, path, HEAP, k, scenario, APP.name if app else None,
                             APP_LOGIN if app else None)
        out, err = qemu.exec(probe, 300)
    finally:
        qemu.close()
    fig = {}  # type: dict[str, object]
    for name, value in re.findall(r"^MEM (\w+) (\d+)", out, re.M):
        fig[name] = int(value)
    m = re.search(r"^SCENARIO (.*?)\r?$", out, re.M)
    if scenario:
        lines = err.strip().splitlines()
        fig["scenario"] = (lines[-1] if lines else "no answer") if m is None else (
            "" if m.group(1) == "ok" else m.group(1))
    elif err.strip():
        raise FirmwareError("the heap probe under QEMU failed: %s" % err.strip().splitlines()[-1])
    return fig


def native() -> bool:
    """NATIVE=0 in the environment: the frozen modules without @micropython.native."""
    return os.environ.get("NATIVE", "1") != "0"


RUN_AIO = """\
import sys
sys.path[:] = ['.frozen']
import aio_arm
aio_arm.main()
"""


def test_arm(tree: Path, pattern: "str | None", verbose: bool) -> int:
    elf = build(tree, native())
    say("test-arm", "%s: %s; running the core tests under qemu-system-arm -machine %s"
        % (BOARD, elf.relative_to(ROOT), MACHINE))
    qemu = Qemu(elf)
    try:
        out, err = qemu.exec(RUN_TESTS % (pattern, verbose), TEST_TIMEOUT,
                             echo=lambda line: None if line.startswith("exit ") else print(line, flush=True))
    finally:
        qemu.close()
    if err.strip():
        raise FirmwareError("the test run under QEMU failed: %s" % err.strip().splitlines()[-1])
    m = re.search(r"^exit (\d+)", out, re.M)
    status = int(m.group(1)) if m else 1
    say("test-arm", "the asyncio front with MicroPython's asyncio (tools/qemu/aio_arm.py)")
    qemu = Qemu(elf)
    try:
        out, err = qemu.exec(RUN_AIO, 120)
    finally:
        qemu.close()
    print(out.strip() + err, flush=True)
    status = status or (0 if re.search(r"^aio: ok", out, re.M) else 1)
    say("test-arm", "the example application %s served the standard scenario (tools/qemu/"
        "armmem.py)" % APP.relative_to(ROOT))
    why = arm_heap(elf, (APP / "broker.conf").read_text(), 0, True, True)["scenario"]
    print("app: " + ("FAIL %s" % why if why else "ok"), flush=True)
    return status or (1 if why else 0)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="tools/armtest.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--micropy-dir", default=os.environ.get("MICROPY_DIR", ""))
    ap.add_argument("-k", dest="pattern", default=None, help="only tests whose name has this")
    ap.add_argument("-v", dest="verbose", action="store_true")
    args = ap.parse_args(argv)
    try:
        tree = check_tree(args.micropy_dir, "qemu", ["arm-none-eabi-gcc", "qemu-system-arm"])
        v = firmware.version(tree)
        say("test-arm", "MicroPython %d.%d.%d from %s" % (v + (tree,)))
        return test_arm(tree, args.pattern, args.verbose)
    except FirmwareError as e:
        print("test-arm: error: %s" % e, file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
