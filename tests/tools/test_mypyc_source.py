"""tools/mypyc_build.py's mypyc_source(): the text of a module of broker/ that mypyc compiles is
the module's own, less only what mypyc cannot see through (the native decorator, bytesops'
choice made at run time, constants it would look up by name)."""
import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT / "tools"))

from mypyc_build import CORE, MQTT5, mypyc_source  # noqa: E402

def _normalized(text: str) -> "list[str]":
    """The lines the transform may not touch: everything but the native decorator, the import of
    the byte primitives (and MPY) and the Final declarations."""
    out = []
    for line in text.splitlines():
        if line.strip() in ("@micropython.native", "from typing import Final") \
                or line.startswith("from broker.bytesops") or line.startswith("MPY = "):
            continue
        out.append(line.replace("  # type: Final", ""))
    return out


def _imported(text: str) -> "set[str]":
    names = set()
    for line in text.splitlines():
        m = re.match(r"from broker\.bytesops(?:_host)? import (.+)$", line)
        if m:
            names.update(n.strip() for n in m.group(1).split(","))
        elif line.startswith("MPY = False"):
            names.add("MPY")
    return names


def test_each_compiled_module_keeps_its_code_but_the_lines_it_names() -> None:
    for name in CORE + MQTT5:
        path = ROOT / "broker" / (name + ".py")
        original = path.read_text()
        text = mypyc_source(path)
        ast.parse(text)  # still Python
        assert re.search(r"^\s*@micropython\.native$", text, re.M) is None, name
        assert re.search(r"^from broker\.bytesops import", text, re.M) is None, name
        assert _normalized(text) == _normalized(original), name
        assert _imported(text) == _imported(original), name


def test_constants_are_final_and_the_primitives_imported_from_bytesops_host() -> None:
    text = mypyc_source(ROOT / "broker" / "engine.py")
    tree = ast.parse(text)
    assert isinstance(tree.body[0], ast.Expr)  # the docstring stays first
    assert isinstance(tree.body[1], ast.ImportFrom) and tree.body[1].module == "typing"
    assert "from broker.bytesops_host import const, copy_into, micropython" in text
    assert "\nMPY = False  # type: Final\n" in text
    consts = [line for line in text.splitlines() if re.match(r"[A-Za-z_]\w* = const\(", line)]
    assert consts and all("  # type: Final" in line for line in consts)
    # a comment after the constant stays, after the declaration
    text = mypyc_source(ROOT / "broker" / "lifecycle.py")
    assert "LIMIT_ACCEPT = const(2)  # type: Final        # accept() failing" in text
