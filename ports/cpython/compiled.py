"""Which build of the core CPython runs: the mypyc one in build/mypyc (tools/mypyc_build.py) or
the pure Python modules, the same source a board runs.

The compiled modules are put before the sources in the `broker` package's path, so that what
mypyc did not compile still comes from broker/. Imported by ports/cpython/__init__.py, before any
module of the core: a class must come from one build only.
"""
import os
import sys
import sysconfig

import broker

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, "build", "mypyc", "broker")

# What the start-up line says: "compiled", or "pure" and why when a build was there.
build = "pure"


def select() -> str:
    """Use the compiled modules unless PURE is set (to anything but "" or "0"), none were built for
    this interpreter, one is older than its source, or a module of the core was already imported
    from its source."""
    global build
    if BUILD in broker.__path__ or os.environ.get("PURE", "") not in ("", "0"):
        return build
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    if not os.path.exists(os.path.join(BUILD, "core__mypyc" + suffix)):
        return build
    src = os.path.join(ROOT, "broker")
    for name in os.listdir(BUILD):
        if name.endswith(suffix) and "__mypyc" not in name:
            module = name[:-len(suffix)]
            if os.path.getmtime(os.path.join(src, module + ".py")) > \
                    os.path.getmtime(os.path.join(BUILD, name)):
                build = "pure: build/mypyc is older than broker/%s.py (make setup)" % module
                return build
    if any(name.startswith("broker.") and name != "broker.__main__" for name in sys.modules):
        return build
    broker.__path__.insert(0, BUILD)
    build = "compiled"
    return build


select()
