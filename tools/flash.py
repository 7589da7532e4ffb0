"""make flash BOARD=rp2|esp32|sim [PORT=<serial device>]: put the broker on a MicroPython board.

    .venv/bin/python tools/flash.py BOARD [--port DEVICE] [--sim-port N] [--secrets FILE]
                                          [--build-dir DIR] [--sim-dir DIR] [--timeout S]
                                          [--app DIR]

APP (--app): an application to run in place of the board's main.py, a directory with its own
main.py and optionally its own broker.conf (boards/examples/NAME, or NAME alone for one there).

Steps, each shown as it goes:
1. compile broker/ and ports/micropython/ (and the board helpers of boards/common/) to .mpy
   with mpy-cross for the board's architecture (boards/BOARD/board.json) into
   build/BOARD/files, next to the board's main.py and broker.conf (and secrets.py for a board
   that joins Wi-Fi: boards/secrets.py, which must exist);
2. find the board (PORT, or the first USB serial device of the board's kind; BOARD=sim starts
   the virtual board, tools/sim.py, unless it runs already) and check that a MicroPython REPL
   answers;
3. when the board's firmware has a ROMFS partition that the compiled modules fit in
   (`mpremote romfs query`), pack them into a ROMFS image (build/BOARD/broker.romfs) and
   deploy it with `mpremote romfs deploy` unless the partition holds that image already, and
   remove copies of the modules from the filesystem, which would shadow /rom; otherwise (or
   with ROMFS=0) the modules are files like the rest, and an image of ours in the partition is
   erased so that it cannot shadow them. Then ask the board for the SHA-256 of each file (one
   mpremote exec) and copy with mpremote only the files whose hash differs;
   A firmware with the broker frozen in (make firmware; its marker module answers) gets only
   broker.conf and secrets.py;
4. soft-reset the board from the friendly REPL, so that main.py starts the broker, and wait
   until it prints that it is listening; print the address to connect to.

Any failure ends in one line on stderr that says what to check, with exit status 1.
The environment may give the options too: PORT, SIM_PORT, SECRETS, SIM_DIR, ROMFS, APP.
"""
from __future__ import annotations

import argparse
import ast
import concurrent.futures
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when loaded with runpy
from mpy_source import (FROZEN_MARKER, board_modules, build_romfs, compile_mpy,  # noqa: E402
                        source_hash)

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
MPREMOTE = VENV_BIN / "mpremote"
BOARDS = ROOT / "boards"
SECRETS = BOARDS / "secrets.py"
SECRETS_TEMPLATE = BOARDS / "secrets.example.py"

# Files that stay source on the board: the firmware runs main.py (and boot.py) by name, and a
# user edits secrets.py in place.
AS_SOURCE = {"main.py", "secrets.py"}
# What a firmware with the broker frozen in still needs copied.
CONFIG_FILES = ("broker.conf", "secrets.py")

# USB vendor ids of MicroPython boards and of the USB-serial chips on ESP32 boards.
USB_VIDS = {
    "rp2": {0x2E8A},                                # Raspberry Pi
    "esp32": {0x303A, 0x10C4, 0x1A86, 0x0403},       # Espressif, CP210x, CH34x, FTDI
}

REPL_TIMEOUT = 3.0
REPL_ATTEMPTS = 3
MPREMOTE_TIMEOUT = 120.0
READY_TIMEOUT = {"sim": 20.0}
READY_TIMEOUT_WIFI = 90.0  # joining Wi-Fi retries with back-off


class FlashError(Exception):
    """One line for the user: what failed and what to check."""


def say(msg: str) -> None:
    print("flash: " + msg, flush=True)


# --------------------------------------------------------------------------------------------
# 1. The file set


def load_board(name: str) -> dict:
    known = sorted(p.name for p in BOARDS.iterdir() if (p / "board.json").is_file())
    if not name:
        raise FlashError("say which board: make flash BOARD=%s" % "|".join(known))
    if name not in known:
        raise FlashError("unknown board '%s': BOARD is one of %s" % (name, ", ".join(known)))
    board = json.loads((BOARDS / name / "board.json").read_text())
    board["id"] = name
    return board


def app_dir(app: str) -> Path | None:
    """APP's directory (a path, or a name under boards/examples), None without APP."""
    if not app:
        return None
    path = Path(app)
    if not path.is_dir() and (BOARDS / "examples" / app).is_dir():
        path = BOARDS / "examples" / app
    if not (path / "main.py").is_file():
        known = sorted(p.name for p in (BOARDS / "examples").iterdir() if (p / "main.py").is_file())
        raise FlashError("APP=%s has no main.py: give a directory with one, or one of %s"
                         % (app, ", ".join(known)))
    return path


def sources(board: str, wifi: bool, app: Path | None = None) -> list[tuple[Path, str]]:
    """(source file, path on the board) of everything the board runs, before compiling: the
    board's main.py, or the application's (app)."""
    files = board_modules()
    files.append((BOARDS / "common" / "boardmain.py", "boardmain.py"))
    if wifi:
        files.append((BOARDS / "common" / "wifi.py", "wifi.py"))
    files.append(((app or BOARDS / board) / "main.py", "main.py"))
    return [(src, dst) for src, dst in files if src.is_file()]


def board_config(board: dict, sim_port: int, app: Path | None = None) -> bytes:
    """boards/BOARD/broker.conf, or the application's own; on the virtual board, its listener
    on the host's loopback."""
    conf = BOARDS / board["id"] / "broker.conf"
    if app is not None and (app / "broker.conf").is_file():
        conf = app / "broker.conf"
    text = conf.read_text()
    if board["id"] != "sim":
        return text.encode()
    lines = []
    for line in text.splitlines():
        if line.split()[:1] == ["listener"]:
            line = "listener %d 127.0.0.1" % sim_port
        lines.append(line)
    return ("\n".join(lines) + "\n").encode()


def check_secrets(path: Path) -> bytes:
    if not path.is_file():
        raise FlashError("%s is missing: copy %s to it and set WIFI_SSID and WIFI_PASSWORD "
                         "(it is never committed; BOARD=sim needs none)"
                         % (_rel(path), _rel(SECRETS_TEMPLATE)))
    data = path.read_bytes()
    values = {}  # type: dict
    try:
        exec(compile(data, str(path), "exec"), values)
    except Exception as e:  # noqa: BLE001 - the user's file: report, never a traceback
        raise FlashError("%s: %s: %s" % (_rel(path), type(e).__name__, e))
    if not values.get("WIFI_SSID") and not values.get("AP_SSID"):
        raise FlashError("%s sets neither WIFI_SSID (the network to join) nor AP_SSID "
                         "(the board's own access point)" % _rel(path))
    return data


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def build(board: dict, out: Path, extra: dict[str, bytes],
          app: Path | None = None) -> tuple[list[tuple[Path, str]], int]:
    """Compile into `out` what changed since the last build and write `extra` (name -> bytes);
    returns [(local file, path on the board)] and how many files were compiled."""
    arch = board["arch"]
    native = bool(board.get("native"))
    kind = arch + (" native" if native else "")
    stamp = out / ".arch"
    if out.exists() and (not stamp.is_file() or stamp.read_text() != kind):
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    stamp.write_text(kind)
    jobs = []
    files = []
    for src, dst in sources(board["id"], bool(board.get("wifi")), app):
        if dst in AS_SOURCE:
            target = out / dst
            if not target.exists() or target.read_bytes() != src.read_bytes():
                shutil.copyfile(src, target)
        else:
            dst = dst[:-3] + ".mpy"
            target = out / dst
            if not target.exists() or target.stat().st_mtime < src.stat().st_mtime:
                jobs.append((src, target, dst[:-4] + ".py"))
        files.append((target, dst))
    for name, data in extra.items():
        target = out / name
        if not target.exists() or target.read_bytes() != data:
            target.write_bytes(data)
        files.append((target, name))
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        errors = [e for e in pool.map(lambda j: compile_mpy(j[0], j[1], arch, j[2], native), jobs)
                  if e]
    if errors:
        raise FlashError(errors[0])
    keep = {out / dst for _, dst in files} | {stamp}
    for path in sorted(out.rglob("*"), reverse=True):
        if path.is_file() and path not in keep:
            path.unlink()  # a module that is gone from the sources
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return files, len(jobs)


# --------------------------------------------------------------------------------------------
# 2. The board


def find_port(board: dict, port: str) -> str:
    if port:
        if not os.path.exists(port):
            raise FlashError("PORT=%s does not exist: check the USB cable and the device name "
                             "(ls /dev/ttyACM* /dev/ttyUSB*)" % port)
        return port
    from serial.tools import list_ports
    vids = USB_VIDS.get(board["id"], set())
    found = sorted(p.device for p in list_ports.comports() if p.vid in vids)
    if not found:
        raise FlashError("no %s found on USB: plug it in with a data cable (MicroPython must be "
                         "installed on it), or name its serial device with PORT=/dev/ttyACM0"
                         % board["name"])
    if len(found) > 1:
        say("several boards found (%s), using %s; choose one with PORT=" % (", ".join(found), found[0]))
    return found[0]


def open_serial(port: str):  # type: ignore[no-untyped-def]
    import serial
    try:
        return serial.Serial(port, 115200, timeout=0.1, exclusive=True)
    except serial.SerialException as e:
        err = e.args[0] if e.args and isinstance(e.args[0], int) else getattr(e, "errno", None)
        text = str(e)
        if err == 13 or "Permission denied" in text:
            raise FlashError("cannot open PORT=%s: permission denied (add yourself to the dialout "
                             "group, then log in again)" % port) from None
        if err == 11 or "temporarily unavailable" in text or "lock" in text.lower():
            raise FlashError("PORT=%s is in use by another program (a serial terminal, Thonny, "
                             "mpremote repl): close it" % port) from None
        if "ioctl" in text:
            raise FlashError("PORT=%s is not a serial device: name the board's port "
                             "(ls /dev/ttyACM* /dev/ttyUSB*)" % port) from None
        raise FlashError("cannot open PORT=%s (%s): check that it is the board's serial device"
                         % (port, text)) from None


def read_until(ser, marker: bytes, timeout: float) -> bytes:  # type: ignore[no-untyped-def]
    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(marker) and time.monotonic() < deadline:
        data += ser.read(max(1, ser.in_waiting))
    return data


def check_repl(port: str) -> None:
    """Stop whatever runs (Ctrl-C), then ask for the raw REPL: a MicroPython board answers."""
    ser = open_serial(port)
    try:
        # A board still booting (or the virtual one just started) may take the interrupt
        # after the request for the raw REPL and lose it: ask again before giving up.
        for _ in range(REPL_ATTEMPTS):
            ser.write(b"\r\x03\x03")
            time.sleep(0.1)
            ser.reset_input_buffer()
            ser.write(b"\r\x01")
            answer = read_until(ser, b"raw REPL; CTRL-B to exit\r\n>", REPL_TIMEOUT)
            ser.write(b"\x02")
            if answer.endswith(b"raw REPL; CTRL-B to exit\r\n>"):
                break
    finally:
        ser.close()
    if not answer.endswith(b"raw REPL; CTRL-B to exit\r\n>"):
        raise FlashError("no MicroPython REPL answers on PORT=%s: is it the board's port, with "
                         "MicroPython installed, and no other program using it?" % port)


def mpremote(port: str, *args: str, echo=None) -> str:  # type: ignore[no-untyped-def]
    """Run `mpremote connect PORT ARGS...`; its output, or FlashError with its last line.
    `echo(line)` sees each output line as it comes."""
    cmd = [str(MPREMOTE), "connect", port] + list(args)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    deadline = time.monotonic() + MPREMOTE_TIMEOUT
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        if echo is not None:
            echo(lines[-1])
        if time.monotonic() > deadline:
            break
    try:
        status = proc.wait(max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise FlashError("mpremote did not finish within %.0f s on PORT=%s: unplug and replug "
                         "the board" % (MPREMOTE_TIMEOUT, port)) from None
    if status != 0:
        last = next((s for s in reversed(lines) if s.strip()), "exit status %d" % status)
        raise FlashError("mpremote on PORT=%s: %s" % (port, last.strip()))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# 3. Copy only what changed

HASH_SCRIPT = """\
import os, hashlib, binascii
for d in %r:
    try:
        os.mkdir(d)
    except OSError:
        pass
b = bytearray(512)
m = memoryview(b)
for p in %r:
    try:
        f = open(p, 'rb')
    except OSError:
        print('-', p)
        continue
    h = hashlib.sha256()
    while True:
        n = f.readinto(b)
        if not n:
            break
        h.update(m[:n])
    f.close()
    print(binascii.hexlify(h.digest()).decode(), p)
"""


def board_hashes(port: str, files: list[tuple[Path, str]]) -> dict[str, str]:
    """Path on the board -> its SHA-256 (hex), '-' when missing; makes the directories."""
    dirs = sorted({dst.rsplit("/", 1)[0] for _, dst in files if "/" in dst}, key=len)
    out = mpremote(port, "exec", HASH_SCRIPT % (dirs, [dst for _, dst in files]))
    hashes = {}
    for line in out.splitlines():
        parts = line.split(" ", 1)
        if len(parts) == 2:
            hashes[parts[1].strip()] = parts[0]
    return hashes


def copy_changed(port: str, files: list[tuple[Path, str]]) -> list[str]:
    hashes = board_hashes(port, files)
    changed = [(src, dst) for src, dst in files
               if hashes.get(dst) != hashlib.sha256(src.read_bytes()).hexdigest()]
    if not changed:
        say("all %d files on the board are up to date, nothing to copy" % len(files))
        return []
    say("%d of %d files changed, copying" % (len(changed), len(files)))
    sizes = {dst: src.stat().st_size for src, dst in changed}
    args = []  # type: list[str]
    for src, dst in changed:
        args += ["+", "fs", "cp", "-f", str(src), ":" + dst]

    def echo(line: str) -> None:
        if line.startswith("cp ") and " :" in line:
            dst = line.rsplit(" :", 1)[1]
            print("  %s (%d bytes)" % (dst, sizes.get(dst, 0)), flush=True)

    mpremote(port, "resume", *args[1:], echo=echo)
    return [dst for _, dst in changed]


# --------------------------------------------------------------------------------------------
# 3a. The modules as a ROMFS image, when the firmware has a partition for it

# What the board tells about its ROMFS partition and its filesystem: sys.path, the SHA-256 of
# the partition's first N bytes (N: the image's length; only a partition the firmware gives
# as a buffer, as most ports do), whether /rom holds a broker, and which module copies exist.
ROMFS_PROBE = """\
import sys, os
print('path', repr(sys.path))
try:
    import vfs, hashlib, binascii
    dev = vfs.rom_ioctl(2, 0)
    if not isinstance(dev, int) and not hasattr(dev, 'ioctl') and len(dev) >= %d:
        h = hashlib.sha256(memoryview(dev)[:%d]).digest()
        print('sha256', binascii.hexlify(h).decode())
    dev = None
except Exception:
    pass
try:
    os.stat('/rom/broker')
    print('rom_broker')
except OSError:
    pass
for p in %r:
    try:
        os.stat(p)
        print('copy', p)
    except OSError:
        pass
try:
    import %s as m
    print('frozen', m.SOURCE)
except ImportError:
    pass
"""

# Erase the partition's first block: firmware mounts no image from it at the next reset.
ROMFS_ERASE = """\
import vfs
try:
    vfs.umount('/rom')
except OSError:
    pass
dev = vfs.rom_ioctl(2, 0)
if hasattr(dev, 'ioctl'):
    dev.ioctl(6, 0)
else:
    b = vfs.rom_ioctl(6, 0)
    if 0 < b < len(dev):
        vfs.rom_ioctl(3, 0, 0, b)
    else:
        vfs.rom_ioctl(3, 0, len(dev))
    vfs.rom_ioctl(5, 0)
print('erased')
"""

REMOVE_SCRIPT = """\
import os
for p in %r:
    try:
        os.remove(p)
    except OSError:
        pass
for d in %r:
    try:
        os.rmdir(d)
    except OSError:
        pass
"""


def romfs_image(out: Path, modules: list[tuple[Path, str]]) -> Path:
    """Pack the compiled modules into build/BOARD/broker.romfs (`mpremote romfs build`)."""
    stage = out.parent / "romfs"
    image = out.parent / "broker.romfs"
    if stage.exists():
        shutil.rmtree(stage)
    for src, dst in modules:
        (stage / dst).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, stage / dst)
    err = build_romfs(stage, image)
    if err:
        raise FlashError(err)
    return image


def romfs_partition(port: str) -> tuple[int, str]:
    """The size of the board's ROMFS partition 0 from `mpremote romfs query` (0: none), and
    why there is none."""
    try:
        out = mpremote(port, "romfs", "query")
    except FlashError as e:
        return 0, "mpremote romfs query failed (%s)" % e
    m = re.search(r"ROMFS0 partition has size (\d+) bytes", out)
    if m:
        return int(m.group(1)), ""
    lines = [s.strip() for s in out.splitlines() if s.strip()]
    return 0, lines[-1] if lines else "mpremote romfs query said nothing"


def board_probe(port: str, image_len: int, modules: list[str]) -> dict:
    out = mpremote(port, "exec", ROMFS_PROBE % (image_len, image_len, modules, FROZEN_MARKER))
    info = {"path": [], "sha256": "", "rom_broker": False, "copies": [],
            "frozen": ""}  # type: dict
    for line in out.splitlines():
        word, _, rest = line.strip().partition(" ")
        if word == "path":
            try:
                info["path"] = ast.literal_eval(rest)
            except (ValueError, SyntaxError):
                pass
        elif word == "sha256":
            info["sha256"] = rest.strip()
        elif word == "rom_broker":
            info["rom_broker"] = True
        elif word == "copy":
            info["copies"].append(rest.strip())
        elif word == "frozen":
            info["frozen"] = rest.strip()
    return info


def path_index(path: list, entries: tuple) -> int:
    """Where the first of `entries` comes on sys.path; len(path) when none is on it."""
    found = [i for i, p in enumerate(path) if p in entries]
    return found[0] if found else len(path)


# The filesystem's root, where the modules go as files: '' while the current directory is /.
FS_ROOT = ("", "/")


def remove_copies(port: str, copies: list[str]) -> None:
    dirs = sorted({c.rsplit("/", i)[0] for c in copies for i in (1, 2) if c.count("/") >= i},
                  key=len, reverse=True)
    mpremote(port, "exec", REMOVE_SCRIPT % (copies, dirs))


def deploy_modules(port: str, out: Path, modules: list[tuple[Path, str]],
                   use_romfs: bool) -> bool:
    """Put the modules on the board as a ROMFS image if the firmware can take one; True if it
    did, False when they are to be copied as files (and no image of ours shadows them)."""
    image = romfs_image(out, modules) if use_romfs else None
    data = image.read_bytes() if image is not None else b""
    info = board_probe(port, len(data), [dst for _, dst in modules])
    path = info["path"]
    reason = "ROMFS=0"
    if image is not None:
        size, why = romfs_partition(port)
        if not size:
            reason = "no ROMFS partition: %s" % why
        elif len(data) > size:
            reason = "the ROMFS partition (%d bytes) is too small for the image (%d bytes)" % (
                size, len(data))
        else:
            if info["sha256"] == hashlib.sha256(data).hexdigest():
                say("ROMFS image on the board is up to date (%d bytes), nothing to deploy"
                    % len(data))
            else:
                say("deploying %d modules as a ROMFS image (%d bytes) to the %d-byte partition"
                    % (len(modules), len(data), size))
                mpremote(port, "romfs", "deploy", str(image),
                         echo=lambda line: print("  " + line, flush=True)
                         if line.startswith(("ROMFS image deployed", "Image size")) else None)
            if info["copies"]:
                # firmware mounts a valid image at the next reset and puts /rom on sys.path
                # then, after '': the copies would shadow it
                shadow = path_index(path, FS_ROOT) < path_index(path, ("/rom",))
                say("removing %d module copies from the filesystem (%s)" % (
                    len(info["copies"]), "they would shadow /rom: sys.path is %r" % path
                    if shadow else "the image replaces them"))
                remove_copies(port, info["copies"])
            return True
    say("modules go to the filesystem as files: %s" % reason)
    if info["rom_broker"]:
        shadow = path_index(path, ("/rom",)) < path_index(path, FS_ROOT)
        say("erasing the ROMFS image of an earlier flash (%s)" % (
            "it comes before the files on sys.path %r" % path if shadow
            else "stale modules the files replace"))
        mpremote(port, "exec", ROMFS_ERASE)
    return False


def frozen_firmware(port: str, board: dict, files: list[tuple[Path, str]]) -> bool:
    """True when the board's firmware has the broker frozen in (make firmware: its marker
    module answers): then only broker.conf and secrets.py are copied, and copies of the modules
    and of main.py, which would shadow the frozen ones ('' comes first on sys.path), are
    removed, as is a ROMFS image of ours."""
    info = board_probe(port, 0, [dst for _, dst in files if dst not in CONFIG_FILES])
    if not info["frozen"]:
        return False
    say("the firmware has the broker frozen in: copying only %s" % " and ".join(
        dst for _, dst in files if dst in CONFIG_FILES))
    if info["frozen"] != source_hash(sources(board["id"], bool(board.get("wifi")))):
        say("warning: the frozen broker differs from this repository's: make firmware "
            "BOARD=%s and copy the new .uf2 to run this one" % board["id"])
    if info["copies"]:
        say("removing %d copies of frozen files from the filesystem (they would shadow them)"
            % len(info["copies"]))
        remove_copies(port, info["copies"])
    if info["rom_broker"]:
        say("erasing the ROMFS image of an earlier flash")
        mpremote(port, "exec", ROMFS_ERASE)
    copy_changed(port, [f for f in files if f[1] in CONFIG_FILES])
    return True


# --------------------------------------------------------------------------------------------
# 4. Reset and wait for the broker


def reset_and_wait(port: str, timeout: float) -> list[str]:
    """Soft reset from the friendly REPL (main.py runs), echo the board's lines, and return
    the addresses that main.py prints once the broker listens ('broker: mqtt://...')."""
    ser = open_serial(port)
    try:
        ser.write(b"\r\x03")
        time.sleep(0.1)
        ser.write(b"\x02")
        time.sleep(0.1)
        ser.reset_input_buffer()
        ser.write(b"\x04")
        deadline = time.monotonic() + timeout
        buf = b""
        listening = False
        addresses = []  # type: list[str]
        last = ""
        quiet_until = 0.0
        while time.monotonic() < deadline:
            chunk = ser.read(max(1, ser.in_waiting))
            if not chunk:
                if listening and (addresses or time.monotonic() > quiet_until):
                    break
                continue
            buf += chunk
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                line = raw.decode("utf-8", "replace").rstrip("\r")
                if not line.strip():
                    continue
                print("  board| " + line, flush=True)
                last = line
                if "listening on" in line:
                    listening = True
                    quiet_until = time.monotonic() + 1.0
                elif line.startswith("broker: mqtt://"):
                    addresses.append(line.split("mqtt://", 1)[1].strip())
    finally:
        ser.close()
    if not listening:
        raise FlashError("the broker did not report 'listening on' within %.0f s (last line from "
                         "the board: %s): watch it with .venv/bin/mpremote connect %s repl"
                         % (timeout, last or "none", port))
    return addresses


# --------------------------------------------------------------------------------------------
# package.json for `mpremote mip install`: the same modules as sources, as .py


def package_json() -> str:
    """package.json's text: what a board runs (main.py aside: the user writes their own),
    sources that mip installs into /lib; URLs relative to the file."""
    version = re.search(r'VERSION = "([^"]+)"', (ROOT / "broker" / "__init__.py").read_text())
    urls = [[dst, str(src.relative_to(ROOT))] for src, dst in sources("rp2", True)
            if dst != "main.py"]
    lines = ",\n".join("    " + json.dumps(u) for u in urls)
    return '{\n  "urls": [\n%s\n  ],\n  "deps": [],\n  "version": %s\n}\n' % (
        lines, json.dumps(version.group(1) if version else "0"))


def port_free(port: int) -> bool:
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return int(port)


def choose_sim_port(requested: str, built: Path, running: bool) -> int:
    """SIM_PORT if given; else the port of the last flash while the board runs (so that a
    re-flash changes nothing), else 1883 when free, else a free port."""
    if requested:
        try:
            port = int(requested)
        except ValueError:
            port = 0
        if not 0 < port < 65536:
            raise FlashError("SIM_PORT=%s is not a TCP port number" % requested)
        return port
    try:
        for line in built.read_text().splitlines():
            if line.split()[:1] == ["listener"]:
                previous = int(line.split()[1])
                if running or port_free(previous):
                    return previous
    except (OSError, ValueError, IndexError):
        pass
    return 1883 if port_free(1883) else free_port()


def flash(args: argparse.Namespace) -> int:
    board = load_board(args.board)
    out = Path(args.build_dir).resolve() / board["id"] / "files"
    say("board %s: %s, mpy-cross -march=%s" % (board["id"], board["name"], board["arch"]))
    app = app_dir(args.app)
    if app is not None:
        say("application %s" % _rel(app))
    extra = {}  # type: dict[str, bytes]
    sim_root = None
    sim_port = 0
    if board["id"] == "sim":
        sys.path.insert(0, str(ROOT / "tools"))
        import sim
        sim_root = Path(args.sim_dir).resolve()
        running = sim.read_state(sim_root) is not None
        sim_port = choose_sim_port(args.sim_port, out / "broker.conf", running)
    extra["broker.conf"] = board_config(board, sim_port, app)
    files, compiled = build(board, out, extra, app)
    say("file set in %s: %d files (%d compiled now)" % (_rel(out), len(files), compiled))
    if board.get("wifi"):
        secrets = Path(args.secrets) if args.secrets else SECRETS
        data = check_secrets(secrets)
        (out / "secrets.py").write_bytes(data)
        files.append((out / "secrets.py", "secrets.py"))
    if sim_root is not None:
        try:
            state = sim.start(sim_root, board.get("heap", sim.DEFAULT_HEAP))
        except sim.SimError as e:
            raise FlashError(str(e)) from None
        port = args.port or state["device"]
        say("virtual board on %s (flash in %s)" % (port, _rel(sim_root / "flash")))
    else:
        port = find_port(board, args.port)
    check_repl(port)
    say("MicroPython answers on %s" % port)
    modules = [(src, dst) for src, dst in files if dst.endswith(".mpy")]
    if frozen_firmware(port, board, files):
        where = "frozen into the firmware"
    elif deploy_modules(port, out, modules, args.romfs != "0"):
        copy_changed(port, [f for f in files if f not in modules])
        where = "from the ROMFS image at /rom"
    else:
        copy_changed(port, files)
        where = "from .mpy files in the filesystem"
    say("resetting the board; waiting for the broker")
    timeout = args.timeout or READY_TIMEOUT.get(board["id"], READY_TIMEOUT_WIFI)
    addresses = reset_and_wait(port, timeout)
    if not addresses:
        addresses = ["<the board's IP address>:1883"]
    for a in addresses:
        host, _, p = a.rpartition(":")
        say("broker ready at %s   (mosquitto_sub -h %s -p %s -t '#' -v)" % (a, host, p))
    say("the broker's modules run %s" % where)
    if board["id"] == "sim":
        say("the virtual board keeps running; make sim-stop stops it")
    return 0


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="tools/flash.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("board", nargs="?", default=os.environ.get("BOARD", ""))
    ap.add_argument("--port", default=os.environ.get("PORT", ""), help="serial device")
    ap.add_argument("--sim-port", default=os.environ.get("SIM_PORT", ""),
                    help="BOARD=sim: the broker's port on 127.0.0.1")
    ap.add_argument("--secrets", default=os.environ.get("SECRETS", ""),
                    help="Wi-Fi settings (default boards/secrets.py)")
    ap.add_argument("--build-dir", default=str(ROOT / "build"))
    ap.add_argument("--sim-dir", default=os.environ.get("SIM_DIR") or str(ROOT / "build" / "sim"))
    ap.add_argument("--romfs", default=os.environ.get("ROMFS", "1"), choices=("0", "1"),
                    help="0: copy the modules as files even where the firmware has a ROMFS "
                         "partition")
    ap.add_argument("--app", default=os.environ.get("APP", ""),
                    help="an application's directory (or a name in boards/examples) whose "
                         "main.py runs in place of the board's")
    ap.add_argument("--timeout", type=float, default=0.0,
                    help="seconds to wait for the broker after the reset")
    ap.add_argument("--write-package-json", action="store_true",
                    help="rewrite package.json (mip) from the file set, then exit")
    args = ap.parse_args(argv)
    if args.write_package_json:
        (ROOT / "package.json").write_text(package_json())
        return 0
    try:
        return flash(args)
    except FlashError as e:
        print("flash: error: %s" % e, file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("flash: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
