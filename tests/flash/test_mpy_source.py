"""Board builds compile bytecode: tools/mpy_source.py drops `@micropython.native` from the sources
(the unix runtime keeps it: machine code there lives outside the heap)."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

from mpy_source import NATIVE, board_source  # noqa: E402


def test_board_source_drops_only_the_native_decorators():
    decorated = 0
    for name in ("engine.py", "output.py"):  # the routing path and the output it writes to
        path = ROOT / "broker" / name
        text = path.read_text()
        decorated += text.count(NATIVE)
        board = board_source(path)
        assert NATIVE not in board
        kept = [line for line in text.splitlines() if line.strip() != NATIVE]
        assert board.splitlines() == kept
        assert board_source(path, native=True) == text
        compile(board, name, "exec")  # still a valid module
    assert decorated >= 5  # the hot path is decorated
