"""Run the core tests (plain functions with plain asserts) on MicroPython or CPython.

    micropython tools/mptest.py [-v] [-k SUBSTRING] PATH [PATH ...]

Each PATH is a directory (every test_*.py in it) or a single test file. Every
module-level callable whose name starts with test_ is called with no arguments, in
the order the file defines it. A test that raises an exception whose class is named
SkipTest (tests/core/support.py provides one) counts as skipped. The last line is
"N passed, N failed" (", N skipped" when some were), and the exit status is 1 when a
test failed or none ran.

Test files are imported by their bare module name with their directory at the front
of sys.path, so test files need distinct names, and helpers in the same directory
import as `from support import SkipTest`. The repository root is put first on
sys.path, so `import broker` works from any test.

run_suite() runs test modules that are importable already, frozen into a firmware with no
filesystem to list (tools/armtest.py, make test-arm).
"""
import gc
import os
import sys

MPY = sys.implementation.name == "micropython"


def _join(a, b):
    if not a:
        return b
    if b.startswith("/"):
        return b
    if a.endswith("/"):
        return a + b
    return a + "/" + b


def _normpath(path):
    """Absolute, with '.' and '..' resolved; string operations only (no os.path on MicroPython)."""
    if not path.startswith("/"):
        path = _join(os.getcwd(), path)
    parts = []
    for p in path.split("/"):
        if p == "" or p == ".":
            continue
        if p == "..":
            if parts:
                parts.pop()
            continue
        parts.append(p)
    return "/" + "/".join(parts)


def _dirname(path):
    i = path.rfind("/")
    if i < 0:
        return "."
    if i == 0:
        return "/"
    return path[:i]


def _is_dir(path):
    try:
        # The stat mode's file-type bits: 0o040000 is a directory, on both runtimes.
        return (os.stat(path)[0] & 0o170000) == 0o040000
    except OSError:
        return False


REPO_ROOT = _dirname(_dirname(_normpath(__file__)))


def _print_traceback(exc):
    if MPY:
        sys.print_exception(exc)  # type: ignore[attr-defined]
    else:
        import traceback
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stdout)


def _defined_order(path):
    """Names of `def test_...` at column 0, in the order the file defines them."""
    names = []
    try:
        f = open(path)
    except OSError:
        return names
    try:
        for line in f:
            if line.startswith("def test_"):
                end = line.find("(")
                if end > 4:
                    name = line[4:end].strip()
                    if name not in names:
                        names.append(name)
    finally:
        f.close()
    return names


def _collect(paths):
    """[(directory, module name, file path)] for every test file named by paths."""
    found = []
    for arg in paths:
        path = _normpath(arg)
        if _is_dir(path):
            for name in sorted(os.listdir(path)):
                if name.startswith("test_") and name.endswith(".py"):
                    found.append((path, name[:-3], _join(path, name)))
        elif path.endswith(".py"):
            name = path[path.rfind("/") + 1:]
            found.append((_dirname(path), name[:-3], path))
        else:
            print("mptest: no such test directory or file: " + arg)
            found.append((None, arg, arg))
    return found


class Runner:
    def __init__(self, pattern, verbose):
        self.pattern = pattern
        self.verbose = verbose
        self.passed = 0
        self.failed = 0
        self.skipped = 0

    def fail(self, label, exc):
        self.failed += 1
        print("FAIL " + label)
        if exc is not None:
            _print_traceback(exc)

    def run_file(self, directory, modname, path):
        if directory is None:
            self.fail(modname + " (not found)", None)
            return
        if directory in sys.path:
            sys.path.remove(directory)
        sys.path.insert(0, directory)
        self.run_module(modname, _defined_order(path))

    def run_module(self, modname, names):
        """Import modname and call its tests: `names` first, in that order, then the others."""
        if modname in sys.modules:
            del sys.modules[modname]
        try:
            module = __import__(modname)
        except Exception as e:
            if type(e).__name__ == "SkipTest":
                self.skipped += 1
                print("SKIP " + modname + ": " + str(e))
            else:
                self.fail(modname + " (import)", e)
            return
        names = list(names)
        rest = []
        for name in dir(module):
            if name.startswith("test_") and name not in names:
                rest.append(name)
        names.extend(sorted(rest))
        for name in names:
            func = getattr(module, name, None)
            if func is None or not callable(func):
                continue
            label = modname + "." + name
            if self.pattern is not None and self.pattern not in label:
                continue
            self.run_one(label, func)
        del sys.modules[modname]
        gc.collect()

    def run_one(self, label, func):
        gc.collect()
        try:
            func()
        except Exception as e:
            if type(e).__name__ == "SkipTest":
                self.skipped += 1
                print("SKIP " + label + ": " + str(e))
            else:
                self.fail(label, e)
            return
        self.passed += 1
        if self.verbose:
            print("ok   " + label)

    def summary(self):
        line = "%d passed, %d failed" % (self.passed, self.failed)
        if self.skipped:
            line += ", %d skipped" % self.skipped
        return line


def run_suite(suite, pattern=None, verbose=False):
    """Run [(module name, test names in their order)] of modules already importable (frozen
    into a firmware: tools/armtest.py); prints the summary, returns the exit status."""
    runner = Runner(pattern, verbose)
    for modname, names in suite:
        runner.run_module(modname, names)
    print(runner.summary())
    return 1 if runner.failed or runner.passed + runner.failed == 0 else 0


def main(argv):
    pattern = None
    verbose = False
    paths = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "-k":
            i += 1
            if i >= len(argv):
                print("mptest: -k needs a substring")
                return 2
            pattern = argv[i]
        elif a == "-v":
            verbose = True
        elif a in ("-h", "--help"):
            print(__doc__)
            return 0
        else:
            paths.append(a)
        i += 1
    if not paths:
        print("usage: mptest.py [-v] [-k SUBSTRING] PATH [PATH ...]")
        return 2

    if REPO_ROOT in sys.path:
        sys.path.remove(REPO_ROOT)
    sys.path.insert(0, REPO_ROOT)

    runner = Runner(pattern, verbose)
    for directory, modname, path in _collect(paths):
        runner.run_file(directory, modname, path)
    print(runner.summary())
    if runner.failed or runner.passed + runner.failed == 0:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
