"""Integration fixtures: start a broker process the way a user starts it.

Every integration test runs once per broker kind; the test id names it (``test_x[micropython]``).
A plain ``pytest`` runs our broker three ways:

    cpython      this project's broker, per the launch contract in DESIGN.md:
                 <python> -m broker -p PORT [-c FILE] [-v], run from the repository root,
                 ready once stderr shows a line containing "listening on HOST:PORT";
                 stopped with SIGTERM.
    micropython  the same broker on MicroPython, per the launch contract:
                 .venv/bin/micropython -X heapsize=HEAP -m broker -p PORT -c FILE [-v],
                 always with the board-sized limits of boards/rp2/broker.conf (its listener
                 line dropped; a test's own line for the same option wins); HEAP comes from
                 the environment variable BROKER_MPY_HEAP (default 144K; a test marked
                 heap(SIZE) gets SIZE); stopped with SIGINT (Ctrl-C, the contract's way to
                 stop it).
    wasm32       the same broker on a 32-bit MicroPython with a 64K heap, as a board runs it
                 after make flash: its .mpy files in a ROMFS image (outside the heap), the
                 board-sized limits as above, on the webassembly port of MicroPython under
                 Node.js: node tools/wasm32/serve.mjs -X heapsize=HEAP --romfs IMAGE -p PORT
                 -c FILE [-v] (the image is built once per session; HEAP from the environment
                 variable BROKER_WASM32_HEAP, default 64K). That port has no TLS, and
                 serve.mjs no unix sockets and no IPv6: tests that need them are skipped for
                 it, saying why (WASM32_LACKS); those of how it refuses them at start-up use
                 the kind's without_skips(). Bridges connect out through Node.js, at the
                 same heap.

The environment variable BROKER_UNDER_TEST selects other kinds (a comma-separated list):

    cpython, micropython, wasm32  only that one
    mosquitto             the reference broker: mosquitto -c FILE, ready once a TCP connect
                          succeeds (mosquitto prints nothing like "listening on")

Running the whole suite against mosquitto checks the tests themselves:

    BROKER_UNDER_TEST=mosquitto .venv/bin/python -m pytest -q tests/integration

Adding a kind is one entry in KINDS.

Tests marked ``@pytest.mark.own_broker`` depend on this broker's own options or log format and
are skipped for the reference broker. A config line naming one of our own table-size options is
also skipped automatically for mosquitto (it has no such option). Tests marked
``@pytest.mark.kinds("micropython", ...)`` run only for the kinds named.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent

# Helper modules next to this file (raw_mqtt, paho_client) must import whatever the import mode.
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from board import board_config_lines, option_name  # noqa: E402
from tls_pki import pki  # noqa: E402,F401  # the session's certificates, for every TLS test

HOST = "127.0.0.1"
READY_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


# --------------------------------------------------------------------------------------------
# require_peer: use tests/peers.py when the project has it, else an equivalent fallback.

_PEER_PACKAGES = {"mosquitto": "mosquitto"}  # everything else comes from mosquitto-clients


def _fallback_require_peer(name: str) -> str:
    """Path of an external program; skip (fail under CI=true) when it is missing."""
    path = shutil.which(name)
    if path is None:
        for folder in ("/usr/sbin", "/usr/local/sbin", "/sbin"):
            candidate = os.path.join(folder, name)
            if os.access(candidate, os.X_OK):
                path = candidate
                break
    if path is not None:
        return path
    package = _PEER_PACKAGES.get(name, "mosquitto-clients")
    reason = "%s not found: apt-get install %s" % (name, package)
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)
    raise AssertionError("unreachable")


def _load_require_peer():
    peers = REPO_ROOT / "tests" / "peers.py"
    if peers.exists():
        spec = importlib.util.spec_from_file_location("_project_tests_peers", peers)
        if spec is not None and spec.loader is not None:
            module = importlib.util.module_from_spec(spec)
            try:
                spec.loader.exec_module(module)
                return module.require_peer
            except Exception:  # a half-written peers.py must not break the suite
                pass
    return _fallback_require_peer


require_peer = _load_require_peer()


# --------------------------------------------------------------------------------------------
# Broker kinds: how to launch each broker under test.

# Options that exist only in this project's broker (table sizes); mosquitto has no such names.
OWN_OPTIONS = frozenset(
    ["max_subscriptions", "max_retained_messages", "max_sessions", "max_topic_length",
     "max_subscriptions_per_client", "max_retained_per_client"]
)


def _our_python() -> str:
    venv = REPO_ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def _our_micropython() -> str:
    venv = REPO_ROOT / ".venv" / "bin" / "micropython"
    return str(venv) if venv.exists() else require_peer("micropython")


def _launch_contract(prefix):
    """argv builder for a kind started per the launch contract: PREFIX -p PORT [-c FILE] [-v]."""

    def argv(port, config_path, verbose):
        args = list(prefix()) + ["-p", str(port)]
        if config_path is not None:
            args += ["-c", str(config_path)]
        if verbose:
            args.append("-v")
        return args

    return argv


def _mosquitto_argv(port, config_path, verbose):
    args = [require_peer("mosquitto"), "-c", str(config_path)]
    if verbose:
        args.append("-v")
    return args


# The target is 64K. On this 64-bit unix port the broker run from source keeps about
# 97K after start-up with the board profile (its code and the names it interns: this port has
# no flash to run code from), and `make mem`'s standard scenario needs 130K; at 128K loading
# the modules runs out of memory. The suite passes at 136K but for test_acl_file's
# test_patterns_and_sys (acl_file and $SYS loaded); at 130K 16 tests cannot load or start the
# broker and 4 more fail, so it runs at 144K to keep a margin. The
# bridge tests load the bridge code as well and are marked heap(BRIDGE_HEAP); they pass down to
# 192K, which a few hundred bytes more start-up code is enough to break: they run at 208K. The
# wasm32 kind, a board's word size with the code in ROMFS, runs the suite at the target itself,
# but for a test marked wasm32_heap(SIZE) (the bridge tests that need a little more).
# An MQTT 5 client makes the broker load its v5 code (broker.v5, codec5, props: about 40K to
# compile from source here, 22K once compiled), and a shared subscription broker.shared; the
# MQTT 5 tests are marked heap(V5_HEAP): test_mqtt5_shared, which loads both, fails at 220K
# (232K leaves room for code to grow).
MPY_HEAP = os.environ.get("BROKER_MPY_HEAP", "144K") or "144K"
BRIDGE_HEAP = "208K"
V5_HEAP = "232K"
WASM32_HEAP = os.environ.get("BROKER_WASM32_HEAP", "64K") or "64K"
_NO_TLS = "the webassembly port has no TLS"
WASM32_LACKS = {
    "certfile": _NO_TLS, "keyfile": _NO_TLS, "cafile": _NO_TLS,
    "bridge_cafile": _NO_TLS, "bridge_certfile": _NO_TLS, "bridge_keyfile": _NO_TLS,
    "listener PATH": "tools/wasm32/serve.mjs listens on TCP only (no unix sockets)",
    "listener IPv6": "tools/wasm32/serve.mjs listens on 127.0.0.1 only (no IPv6)",
    # Not the broker's limit: this port collects garbage only between two calls from Node.js,
    # and one CONNECT's 1,000 hash rounds make more garbage than 64K holds meanwhile:
    # serve.mjs refuses a password_file at start-up.
    "password_file": "the webassembly port cannot collect during the password hash",
}


class BrokerKind:
    """How to start one broker implementation.

    argv(port, config_path_or_None, verbose) -> list of arguments
    ready: "log" (wait for "listening on" on stderr) or "tcp" (wait for a TCP connect)
    always_config: write a config file even when the test gives no lines
    base_config: callable -> config lines every start gets (a test's own line for the same
                 option replaces the base line)
    unsupported: option names this broker does not know (such tests are skipped)
    lacks: {option name: why} for what this kind cannot serve (such tests are skipped, saying
           why); the name "listener PATH" stands for a listener on a unix socket, and
           "listener IPv6" for one on an IPv6 address
    reference: True for the reference broker (tests marked own_broker are skipped)
    stop_signal: what stop() sends first (SIGKILL follows if it does not exit)
    heap: MicroPython heap size (-X heapsize=...), None for other kinds
    """

    def __init__(self, name, argv, ready="log", always_config=False, unsupported=(),
                 reference=False, base_config=None, stop_signal=signal.SIGTERM, heap=None,
                 lacks=None):
        self.name = name
        self.argv = argv
        self.ready = ready
        self.always_config = always_config
        self.unsupported = frozenset(unsupported)
        self.lacks = dict(lacks or {})
        self.reference = reference
        self.base_config = base_config
        self.stop_signal = stop_signal
        self.heap = heap

    def with_heap(self, heap):
        """The same kind with another MicroPython heap size ("40K", "40000")."""
        if self.heap is None:
            raise ValueError("%s has no heap size to set" % self.name)
        return micropython_kind(heap=heap, name=self.name)

    def without_skips(self):
        """The same kind with no test skipped for what it lacks: for the tests of how it
        refuses, at start-up, a configuration it cannot serve."""
        kind = copy.copy(self)
        kind.lacks = {}
        return kind

    def base_lines(self):
        return list(self.base_config()) if self.base_config is not None else []

    def __repr__(self):
        return "<BrokerKind %s>" % self.name


_WASM32_IMAGE = []  # the ROMFS image, built once per session


def _wasm32_prefix(heap=WASM32_HEAP):
    """serve.mjs on the 32-bit webassembly port, the broker's .mpy files in a ROMFS image."""
    if not (REPO_ROOT / "tools" / "wasm32" / "node_modules" / "@micropython").is_dir():
        reason = "the webassembly port's npm package is missing: make test-wasm32 installs it"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    if not _WASM32_IMAGE:
        spec = importlib.util.spec_from_file_location("_tools_mem", REPO_ROOT / "tools" / "mem.py")
        assert spec is not None and spec.loader is not None
        mem = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mem)
        err = mem.build_wasm32()
        if err:
            pytest.fail("the wasm32 broker could not be built: %s" % err)
        _WASM32_IMAGE.append(str(mem.WASM32_IMAGE))
    return [require_peer("node"), str(REPO_ROOT / "tools" / "wasm32" / "serve.mjs"),
            "-X", "heapsize=%s" % heap, "--romfs", _WASM32_IMAGE[0]]


def wasm32_kind(heap=WASM32_HEAP):
    """The 32-bit broker with board-sized limits and the given heap ("64K")."""
    return BrokerKind(
        "wasm32", _launch_contract(lambda: _wasm32_prefix(heap)), ready="log",
        always_config=True, base_config=board_config_lines, stop_signal=signal.SIGINT,
        lacks=WASM32_LACKS,
    )


def micropython_kind(heap=MPY_HEAP, name="micropython"):
    """The MicroPython broker with board-sized limits and the given heap ("64K", "40000")."""
    return BrokerKind(
        name,
        _launch_contract(lambda: [_our_micropython(), "-X", "heapsize=%s" % heap, "-m", "broker"]),
        ready="log", always_config=True, base_config=board_config_lines,
        stop_signal=signal.SIGINT, heap=heap,
    )


KINDS = {
    "cpython": BrokerKind(
        "cpython", _launch_contract(lambda: [_our_python(), "-m", "broker"]), ready="log"
    ),
    "micropython": micropython_kind(),
    "wasm32": wasm32_kind(),
    "mosquitto": BrokerKind(
        "mosquitto", _mosquitto_argv, ready="tcp", always_config=True,
        unsupported=OWN_OPTIONS, reference=True,
    ),
}

# What a plain `pytest` runs: our broker on both runtimes, and on the 32-bit one.
DEFAULT_KINDS = ("cpython", "micropython", "wasm32")

KIND_NAMES = [k.strip() for k in os.environ.get("BROKER_UNDER_TEST", "").split(",")
              if k.strip()] or list(DEFAULT_KINDS)
KIND_NAME = ",".join(KIND_NAMES)  # for messages


def selected_kinds():
    unknown = [k for k in KIND_NAMES if k not in KINDS]
    if unknown:
        raise pytest.UsageError(
            "BROKER_UNDER_TEST=%r: expected one (or a comma-separated list) of %s"
            % (KIND_NAME, ", ".join(sorted(KINDS)))
        )
    return list(KIND_NAMES)


def current_kind() -> BrokerKind:
    """The first selected kind (kept for callers from before the suite was parameterised)."""
    return KINDS[selected_kinds()[0]]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class BrokerError(AssertionError):
    pass


class Broker:
    """One broker process on a loopback port.

    .host .port .proc .kind .config_path, .log() (stderr so far), .start(config_lines), .stop()
    """

    def __init__(self, kind: BrokerKind, workdir: Path):
        self._kind = kind
        self.kind = kind.name
        self.host = HOST
        self.port = None
        self.proc = None
        self.config_path = None
        self._workdir = workdir
        self._stderr = []
        self._stdout = []
        self._lock = threading.Lock()
        self._readers = []

    # -- output ---------------------------------------------------------------------------
    def log(self) -> str:
        """Everything the broker wrote to stderr so far."""
        with self._lock:
            return "".join(self._stderr)

    def stdout(self) -> str:
        with self._lock:
            return "".join(self._stdout)

    def wait_log(self, predicate, timeout=5.0):
        """Wait until predicate(log_text) is true; return the log text (fail on timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log()
            if predicate(text):
                return text
            if time.monotonic() >= deadline:
                raise BrokerError("log condition not met within %.1fs; log:\n%s" % (timeout, text))
            time.sleep(0.02)

    def _pump(self, stream, sink):
        try:
            for raw in iter(stream.readline, b""):
                with self._lock:
                    sink.append(raw.decode("utf-8", "replace"))
        except (OSError, ValueError):
            pass
        finally:
            try:
                stream.close()
            except OSError:
                pass

    # -- configuration --------------------------------------------------------------------
    def _config_text(self, config_lines):
        own = [option_name(line) for line in config_lines]
        own = [name for name in own if name is not None]
        for line in config_lines:
            words = line.split()
            name = option_name(line)
            if name == "listener" and len(words) > 2 and "/" in words[2]:
                name = "listener PATH"
            elif name == "listener" and len(words) > 2 and ":" in words[2]:
                name = "listener IPv6"
            if name in self._kind.lacks:
                pytest.skip("%s: %s" % (self.kind, self._kind.lacks[name]))
        missing = sorted(set(own) & self._kind.unsupported)
        if missing:
            pytest.skip(
                "%s has no option %s (uses this broker's own option/log format)"
                % (self.kind, ", ".join(missing))
            )
        if not config_lines and not self._kind.always_config:
            return None
        # the kind's base lines (the board profile), unless the test sets the same option
        base = [line for line in self._kind.base_lines() if option_name(line) not in own]
        names = set(own) | set(option_name(line) for line in base)
        head = ["listener %d %s" % (self.port, self.host)]
        if "allow_anonymous" not in names:
            # mosquitto 2 (and our defaults, which follow it) refuse anonymous clients as soon
            # as a listener is configured; these tests connect anonymously.
            head.append("allow_anonymous true")
        return "\n".join(head + base + list(config_lines)) + "\n"

    # -- lifecycle ------------------------------------------------------------------------
    def start(self, config_lines=(), *, port=None, verbose=False, wait=True,
              timeout=READY_TIMEOUT):
        """Start the broker; with wait=True return once it accepts connections."""
        if self.proc is not None:
            raise RuntimeError("broker already started")
        self.port = port if port is not None else free_port()
        text = self._config_text(list(config_lines))
        if text is not None:
            self.config_path = self._workdir / ("broker-%d.conf" % self.port)
            self.config_path.write_text(text)
        argv = self._kind.argv(self.port, self.config_path, verbose)
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.proc = subprocess.Popen(
            argv, cwd=str(REPO_ROOT), env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        for stream, sink in ((self.proc.stderr, self._stderr), (self.proc.stdout, self._stdout)):
            t = threading.Thread(target=self._pump, args=(stream, sink), daemon=True)
            t.start()
            self._readers.append(t)
        if wait:
            self._wait_ready(timeout)
        return self

    def _describe(self):
        return "%s broker %r\nconfig:\n%s\nstderr:\n%s\nstdout:\n%s" % (
            self.kind,
            self.proc.args if self.proc else None,
            self.config_path.read_text() if self.config_path else "(none)",
            self.log(),
            self.stdout(),
        )

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                self._join_readers()
                raise BrokerError(
                    "broker exited with code %s before accepting connections\n%s"
                    % (self.proc.returncode, self._describe())
                )
            if self._kind.ready == "log":
                if "listening on" in self.log():
                    return
            elif self._tcp_ready():
                return
            if time.monotonic() >= deadline:
                self.stop()
                raise BrokerError(
                    "broker not ready within %.0fs\n%s" % (timeout, self._describe())
                )
            time.sleep(0.02)

    def _tcp_ready(self):
        try:
            with socket.create_connection((self.host, self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def _join_readers(self):
        for t in self._readers:
            t.join(timeout=2.0)

    def wait_exit(self, timeout=READY_TIMEOUT):
        """Wait for the process to exit by itself; return its exit code (fail on timeout)."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise BrokerError("broker still running after %.0fs\n%s" % (timeout, self._describe()))
        self._join_readers()
        return code

    def stop(self):
        """The kind's stop signal (SIGTERM; SIGINT = Ctrl-C for MicroPython), wait, SIGKILL if
        needed; return the exit code (None if never started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(self._kind.stop_signal)
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT)
            except ProcessLookupError:
                pass
        self._join_readers()
        return self.proc.returncode

    def __repr__(self):
        return "<Broker %s %s:%s>" % (self.kind, self.host, self.port)


def startup_error(broker_factory, config_lines, kind=None):
    """Start a broker that must refuse to start: exit status 1, and one line besides its
    timestamped start-up notices. Returns that line and the Broker."""
    b = broker_factory(config_lines, start=False, kind=kind)
    b.start(config_lines, wait=False)
    code = b.wait_exit()
    log = b.log()
    assert code == 1, log
    said = [line for line in log.splitlines() if not re.match(r"\d+: ", line)]
    assert len(said) == 1, log
    return said[0], b


# --------------------------------------------------------------------------------------------
# pytest hooks and fixtures


def pytest_configure(config):
    selected_kinds()  # a bad BROKER_UNDER_TEST stops the run with one clear line
    config.addinivalue_line(
        "markers",
        "own_broker: depends on this broker's own options or log format; "
        "skipped for the reference broker",
    )
    config.addinivalue_line(
        "markers",
        "kinds(*names): run this test only for the broker kinds named (e.g. 'micropython')",
    )
    config.addinivalue_line(
        "markers", "heap(size): the MicroPython broker's heap for this test (e.g. '256K')",
    )
    config.addinivalue_line(
        "markers", "wasm32_heap(size): the 32-bit broker's heap for this test (e.g. '66K')",
    )


def pytest_generate_tests(metafunc):
    """Parameterise every test that uses a broker over the selected kinds."""
    if "broker_kind" not in metafunc.fixturenames:
        return
    names = selected_kinds()
    marker = metafunc.definition.get_closest_marker("kinds")
    params = []
    if marker is not None:
        wanted = [n for n in names if n in marker.args]
        params = [pytest.param(n, id=n) for n in wanted]
        if not params:
            params = [pytest.param(
                marker.args[0], id=marker.args[0],
                marks=pytest.mark.skip(reason="only for %s; BROKER_UNDER_TEST selects %s"
                                       % (", ".join(marker.args), KIND_NAME)))]
    else:
        params = [pytest.param(n, id=n) for n in names]
    metafunc.parametrize("broker_kind", params, indirect=True, scope="session")


def _item_kind(item):
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return None
    return KINDS.get(callspec.params.get("broker_kind"))


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="uses this broker's own option/log format")
    for item in items:
        kind = _item_kind(item)
        if kind is not None and kind.reference and item.get_closest_marker("own_broker"):
            item.add_marker(skip)


def pytest_report_header(config):
    return ("brokers under test: %s (BROKER_UNDER_TEST); MicroPython heap %s (BROKER_MPY_HEAP),"
            " wasm32 heap %s (BROKER_WASM32_HEAP)" % (KIND_NAME, MPY_HEAP, WASM32_HEAP))


@pytest.fixture(scope="session")
def broker_kind(request) -> BrokerKind:
    """The kind this test instance runs against (parameterised by pytest_generate_tests)."""
    return KINDS[request.param]


@pytest.fixture(scope="session")
def peer():
    """require_peer(name) -> path of an external program (skip if missing, fail under CI)."""
    return require_peer


@pytest.fixture
def broker_factory(broker_kind, tmp_path, request):
    """Factory: broker_factory(config_lines=[...], **start_kwargs) -> started Broker.

    kind=BrokerKind overrides the test's kind (e.g. broker_kind.with_heap("40K")); a test
    marked heap(SIZE) gets its MicroPython broker with that heap.
    With start=False it returns an unstarted Broker; call .start(...) yourself.
    Every broker made here is stopped at teardown (terminate, wait, kill).
    """
    made = []
    marker = request.node.get_closest_marker("heap")
    if marker is not None and broker_kind.heap is not None:
        broker_kind = broker_kind.with_heap(marker.args[0])
    marker = request.node.get_closest_marker("wasm32_heap")
    if marker is not None and broker_kind.name == "wasm32":
        broker_kind = wasm32_kind(marker.args[0])

    def make(config_lines=(), start=True, kind=None, **kwargs):
        b = Broker(kind if kind is not None else broker_kind, tmp_path)
        made.append(b)
        if start:
            b.start(config_lines, **kwargs)
        return b

    yield make
    for b in made:
        b.stop()


@pytest.fixture
def broker(broker_factory):
    """A broker with the default configuration, started for this test."""
    return broker_factory()


@pytest.fixture
def mqtt_client():
    """Factory for connected paho clients (see paho_client.PahoClient); closed at teardown."""
    from paho_client import PahoClient

    made = []

    def make(broker, client_id="", connect=True, **kwargs):
        c = PahoClient(broker, client_id, **kwargs)
        made.append(c)
        if connect:
            c.connect()
        return c

    yield make
    for c in made:
        c.close()


def closed_at_teardown(new, close=lambda made: made.close()):
    """For a factory fixture (`yield from closed_at_teardown(WsConn)`): it yields new, which
    keeps what it makes, and then closes each with close()."""
    made = []

    def make(*args, **kwargs):
        made.append(new(*args, **kwargs))
        return made[-1]

    yield make
    for m in made:
        close(m)


@pytest.fixture
def raw_client():
    """Factory for raw-socket MQTT connections (see raw_mqtt.RawClient); closed at teardown."""
    from raw_mqtt import RawClient

    yield from closed_at_teardown(
        lambda broker, **kwargs: RawClient(broker.host, broker.port, **kwargs))
