"""The source a board's .mpy files are compiled from: the repository's, less `@micropython.native`.

On the unix runtime that decorator turns the hot path (framing, PUBLISH handling, routing) into
machine code kept outside the Python heap, about twice as fast. On a board the same machine code
would sit in the heap (about 10 KB more for armv6m), which a board needs more than the speed, so
board builds (tools/flash.py, and the .mpy and ROMFS figures of tools/mem.py) compile bytecode:
the same program, interpreted. A board's boards/BOARD/board.json may set "native": true to keep it.
"""
from __future__ import annotations

from pathlib import Path

NATIVE = "@micropython.native"


def board_source(path: Path, native: bool = False) -> str:
    """The text of path, with the native decorators dropped unless native is true."""
    text = path.read_text()
    if native:
        return text
    return "".join(line for line in text.splitlines(keepends=True) if line.strip() != NATIVE)
