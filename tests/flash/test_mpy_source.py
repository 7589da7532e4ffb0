"""Board builds compile bytecode: tools/mpy_source.py drops `@micropython.native` from the sources
(the unix runtime keeps it: machine code there lives outside the heap)."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

from mpy_source import NATIVE, board_source  # noqa: E402


def test_board_source_drops_only_the_native_decorators():
    engine = ROOT / "broker" / "engine.py"
    text = engine.read_text()
    assert text.count(NATIVE) >= 5  # the hot path is decorated
    board = board_source(engine)
    assert NATIVE not in board
    kept = [line for line in text.splitlines() if line.strip() != NATIVE]
    assert board.splitlines() == kept
    assert board_source(engine, native=True) == text
    compile(board, "engine.py", "exec")  # still a valid module
