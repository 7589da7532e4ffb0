"""Compile the core's routing path with mypyc into build/mypyc (make setup runs it).

The C extensions go to build/mypyc/broker/, never beside the .py files, where MicroPython or a
PURE=1 run would find them; ports/cpython/compiled.py puts that directory before the sources when
it holds a build for this interpreter. Without a C compiler or Python's headers this says so in one
line and exits 0: the pure build serves.

    .venv/bin/python tools/mypyc_build.py [--quiet]
"""
import ast
import contextlib
import io
import os
import re
import shutil
import sys
import sysconfig
import warnings
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "build", "mypyc")
SRC = os.path.join(ROOT, "build", "mypyc-src")

# The routing path: the codec, the tables, the engine, each packet's handler, the output and the
# timers, CPython's byte primitives (bytesops_host). The rest stays interpreted, off the routing
# path: configuration, bridges, persistence, $SYS, hooks.
CORE = [
    "topics", "filtertree", "subscriptions", "routecache", "retain", "local", "handle_connect",
    "handle_subscribe", "engine", "output", "lifecycle", "keepalive", "delivery", "conn", "session",
    "codec", "handle_publish", "bytesops_host", "const",
]
# MQTT 5's (props for ProtocolError too, whose base class is compiled), and bridge5, whose Remote
# is a v5.State (an interpreted class cannot derive from a compiled one): a library of their own,
# so that the 3.1.1 path's machine code stays together and a broker serving 3.1.1 clients touches
# fewer pages of it (make bench's memory per idle connection counts the pages of code first run
# while its thousand clients connect, 100 to 250 bytes per client that vary from run to run).
MQTT5 = ["props", "v5", "codec5", "bridge5"]


def compiler_missing() -> str:
    """Why no extension can be built here ("" when one can)."""
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        return "no C compiler (%s)" % cc
    if not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")):
        return "no Python headers (Python.h)"
    return ""


_BYTESOPS = re.compile(r"^from broker\.bytesops import ([^(\n]+)$", re.M)
_CONST = re.compile(r"^([A-Za-z_][A-Za-z0-9_]* = const\([^()\n]*\))([ \t]*(#[^\n]*)?)$", re.M)


def _host_imports(m: "re.Match[str]") -> str:
    names = [n.strip() for n in m.group(1).split(",")]
    lines = []
    host = [n for n in names if n != "MPY"]
    if host:
        lines.append("from broker.bytesops_host import %s" % ", ".join(host))
    if "MPY" in names:
        lines.append("MPY = False  # type: Final")
    return "\n".join(lines)


def mypyc_source(path: Path) -> str:
    """A module of broker/ as mypyc compiles it. The same text, less what mypyc cannot see
    through, each call or read of which would otherwise go through Python's own machinery:
    - `@micropython.native`, dropped as for a board's .mpy files (tools/mpy_source.py): a
      decorator that does nothing on CPython, but a decorated function is called as a Python
      object;
    - broker.bytesops, which picks its primitives when it is imported: they are imported from
      broker.bytesops_host (CPython's, compiled with the core), and MPY is the constant False;
    - each module-level `NAME = const(...)` is declared Final, so that a compiled function
      reads a C variable instead of looking the name up in its module's dict."""
    from mpy_source import board_source
    text = _BYTESOPS.sub(_host_imports, board_source(path))
    text = _CONST.sub(r"\1  # type: Final\2", text)
    if "# type: Final" in text:
        body = ast.parse(text).body
        doc = body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
        lines = text.splitlines(keepends=True)
        at = body[0].end_lineno if doc else 0
        text = "".join(lines[:at]) + "from typing import Final\n" + "".join(lines[at:])
    return text


def stage_source() -> None:
    """broker/ as mypyc compiles it (mypyc_source()), into SRC, with the project's mypy
    settings."""
    from mpy_source import board_source
    shutil.rmtree(SRC, ignore_errors=True)
    os.makedirs(os.path.join(SRC, "broker"))
    src = Path(ROOT) / "broker"
    compiled = set(CORE + MQTT5)
    for path in sorted(src.glob("*.py")):
        text = mypyc_source(path) if path.stem in compiled else board_source(path)
        (Path(SRC) / "broker" / path.name).write_text(text)
    config = (Path(ROOT) / "pyproject.toml").read_text()
    config = config.replace('mypy_path = "stubs"', 'mypy_path = "%s"' % os.path.join(ROOT, "stubs"))
    (Path(SRC) / "pyproject.toml").write_text(config)


def main(argv: "list[str]") -> int:
    quiet = "--quiet" in argv
    why = compiler_missing()
    if why:
        print("mypyc build skipped: %s; the broker runs its pure Python build" % why)
        return 0
    from mypyc.build import mypycify
    from setuptools import setup

    stage_source()
    os.chdir(SRC)  # mypy names the modules from the paths given
    shutil.rmtree(OUT, ignore_errors=True)
    tmp = os.path.join(ROOT, "build", "mypyc-tmp")
    core = [os.path.join("broker", m + ".py") for m in CORE]
    v5 = [os.path.join("broker", m + ".py") for m in MQTT5]
    said = io.StringIO()
    try:
        with contextlib.redirect_stdout(said):
            ext = mypycify(core + v5, opt_level="3", target_dir=os.path.join(tmp, "c"),
                           separate=[(core, "broker.core"), (v5, "broker.mqtt5")])
    finally:
        os.chdir(ROOT)  # (setuptools would read the copy of pyproject.toml as a project)
        # a class default that is not a literal is set by each instance: as the source means
        for line in said.getvalue().splitlines():
            if "Unsupported default attribute value" not in line:
                print(line)
    warnings.filterwarnings("ignore", message="Support for .*is still .*beta")
    setup(name="broker-compiled", ext_modules=ext, script_name="mypyc_build",
          script_args=["-q" if quiet else "-v", "build_ext", "--build-lib", OUT,
                       "--build-temp", os.path.join(tmp, "o")])
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(SRC, ignore_errors=True)
    print("mypyc build: %d modules of broker/ in %s" % (len(CORE) + len(MQTT5), os.path.relpath(OUT)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
