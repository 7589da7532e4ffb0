"""Heap figures of the MicroPython broker, from .py sources and from mpy-cross output.

    .venv/bin/python tools/mem.py [-c CONFIG] [--only py|mpy|romfs|wasm32|arm] [--no-bisect]
                                  [--persistence] [-v]

(`make mem` runs it with the defaults.) For each variant it prints, with the board-sized
configuration (default boards/rp2/broker.conf):

- heap used after import, idle after start-up, per connected client, per subscription and
  per retained message, read inside the broker process by tools/mem_probe.py (gc.collect(),
  then gc.mem_alloc(), minus what the bare interpreter and the probe held before the import)
  while real socket clients connect, subscribe and publish;
- the smallest `-X heapsize` (2 KB steps, 16K..256K) at which the broker, started per the
  launch contract (`micropython -X heapsize=N -m broker -c CONFIG`), runs the standard
  scenario: 8 clients subscribing to a wildcard and an exact filter, publishing at QoS 0, 1
  and 2, retained messages, a will published when its client is killed, then a new client
  served; and the smallest heap that can import the broker at all;
- with MQTT 5.0: the heap after the first MQTT 5 client, which loads the v5 code (broker.v5,
  codec5, props; a board whose clients all speak 3.1.1 never does), and the smallest heap for the
  standard scenario's MQTT 5 variant: the same clients speaking 5.0, each message and the will
  with one User Property, which must arrive with every copy.

The .mpy variant is compiled by mpy-cross into build/mpy/ (only .mpy files, the package
layout kept) from the source a board gets (tools/mpy_source.py: bytecode only, no
`@micropython.native`) and run with build/mpy as the working directory. The .py variant runs the
repository's source, whose hot path the unix runtime compiles to machine code outside the heap. The ROMFS variant packs those
.mpy files into build/broker.romfs with `mpremote romfs build` and runs them from the mounted
image through tools/romfs_boot.py, as a board whose firmware has a ROMFS partition runs them
from flash: bytecode and strings are used in place instead of being copied into the heap. The
unix runtime has no memory-mapped flash, so the image is read into the heap first; every
heap size given for this variant is the figure reported plus the image's size, and the image
is not counted in any figure.

Then the .mpy and ROMFS variants again on a 32-bit MicroPython, columns ".mpy(32)" and
"ROMFS(32)": the webassembly port of the same release, which tools/wasm32/serve.mjs runs under
Node.js (`make test-wasm32` installs it) with a heap of fixed size. Objects have a board's size
there, and a ROMFS image stays outside the heap as in a board's flash, so heap sizes are the
broker's alone. That port has no sockets: serve.mjs passes Node's sockets through a stand-in
`socket` module (tools/wasm32/py), whose few objects count in the heap like a board's sockets;
the same probe protocol and scenario run against it. It has no native emitter either: viper
functions run as bytecode. It collects garbage only between two calls from Node.js, which
serve.mjs makes after every event, so a board, which collects whenever its heap is full, needs
no more than the figure given.

With MICROPY_DIR set (a MicroPython source tree, as for make test-arm), a column "frozen(ARM)":
the broker frozen into the firmware of make test-arm (tools/armtest.py: MicroPython's QEMU port,
a Cortex-M3, NATIVE=0 without `@micropython.native`) under qemu-system-arm, read by
tools/qemu/armmem.py: heap after import, idle after start-up, and the smallest heap for the
standard scenario. Beside it "app(ARM)": the example application boards/examples/sensorhub
(the asyncio front with hooks, its own broker.conf) run from the same firmware as a board runs
its main.py: idle once started, and the smallest heap for the standard scenario, its clients
logged in through its authenticate hook, while its tasks publish readings, then its own checks
(a stranger refused, the LED switched by cmd/led). That port has no sockets: the broker starts as a board's without opening its
listeners, and the scenario's clients are in-process pipes that ports/loop.py serves as it serves
sockets (their own few hundred bytes count). Each size is tried on the one firmware, whose heap
is 2 MB, with a filler allocation made first that leaves the broker the heap of that size.
Without MICROPY_DIR one line says how to get the column.

--persistence adds `persistence true` with `autosave_interval 1` to the configuration, the
journal beside it (on the 32-bit port, in Emscripten's in-memory filesystem): every figure then
includes the journal's code, loaded at start-up, and a save each second of the scenario.

It measures, it does not judge: the exit status is 0 whatever the figures, and 1 only when the
broker could not be started at all (or mpy-cross failed).
"""

from __future__ import annotations

import argparse
import os
import re
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when loaded with runpy
from mpy_source import board_modules, build_romfs, compile_mpy  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
MICROPYTHON = VENV_BIN / "micropython"
PROBE = ROOT / "tools" / "mem_probe.py"
BUILD = ROOT / "build" / "mpy"
ROMFS_IMAGE = ROOT / "build" / "broker.romfs"
ROMFS_BOOT = ROOT / "tools" / "romfs_boot.py"
ROMFS_CWD = ROOT / "build" / "romfs-run"  # holds no broker/: imports come from the image
WASM32 = ROOT / "tools" / "wasm32"
WASM32_BUILD = ROOT / "build" / "wasm32" / "mpy"
WASM32_IMAGE = ROOT / "build" / "wasm32" / "broker.romfs"
HOST = "127.0.0.1"

IDLE_S = 1.2
N_CLIENTS = 8          # board max_connections
N_SUBS = 64            # board max_subscriptions, half exact, half wildcard
N_RETAINED = 16        # board max_retained_messages
TOPIC_LEN = 16
PAYLOAD_LEN = 32

PROBE_HEAP_K = 256     # heap for the figure run: room enough that GC pressure plays no part
BISECT_LO_K = 16
BISECT_HI_K = 256
BISECT_STEP_K = 2
CONFIRM = 2

TARGET_IDLE = 32 * 1024
TARGET_CLIENT = 1024
TARGET_HEAP_K = 64

VERBOSE = False


PERSISTENCE = False  # --persistence

def log(msg: str) -> None:
    if VERBOSE:
        print("  [mem] " + msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# A small MQTT 3.1.1 or 5.0 client on a plain socket, acknowledging QoS 1/2 on both legs by
# itself. An MQTT 5 client sends every message (and its will) with one User Property, and counts
# the messages it receives without exactly that property.

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 12, 13, 14
USER_PROPERTY = b"\x26\x00\x04unit\x00\x07celsius"  # ("unit", "celsius")
PROPERTIES = bytes([len(USER_PROPERTY)]) + USER_PROPERTY  # with their Property Length


def _field(value) -> bytes:
    data = value.encode() if isinstance(value, str) else bytes(value)
    return struct.pack("!H", len(data)) + data


def _packet(b0: int, body: bytes) -> bytes:
    n = len(body)
    rl = bytearray()
    while True:
        d = n % 128
        n //= 128
        rl.append(d | 0x80 if n else d)
        if not n:
            break
    return bytes([b0]) + bytes(rl) + body


def _varint(data: bytes, pos: int) -> "tuple[int, int]":
    """A Variable Byte Integer at data[pos:]: (its value, where what follows it starts)."""
    n, shift = 0, 0
    while True:
        d = data[pos]
        pos += 1
        n |= (d & 0x7F) << shift
        shift += 7
        if not d & 0x80:
            return n, pos


class BrokerGone(Exception):
    pass


class Client:
    def __init__(self, port: int, client_id: str, will=None, keepalive: int = 60,
                 version: int = 4):
        self.id = client_id
        self.version = version
        self.sock = socket.create_connection((HOST, port), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.buf = bytearray()
        self.eof = False
        self.expect_eof = False  # set once we sent DISCONNECT
        self.got = []            # (topic, payload, qos, retain) of each PUBLISH received
        self.control = []        # (type, body) of other packets received
        self.outgoing = {}       # packet id -> packet type awaited (PUBACK, PUBREC, PUBCOMP)
        self.inbound_qos2 = set()
        self.mid = 0
        self.wrong_props = 0     # MQTT 5: messages received without their User Property
        v5 = version == 5
        flags = 0x02
        payload = _field(client_id)
        if will is not None:
            topic, message, qos, retain = will
            flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
            payload += (PROPERTIES if v5 else b"") + _field(topic) + _field(message)
        self.send(_packet(CONNECT << 4, _field("MQTT") + bytes([version, flags])
                          + struct.pack("!H", keepalive) + (b"\x00" if v5 else b"") + payload))

    def next_mid(self) -> int:
        self.mid = self.mid % 65535 + 1
        return self.mid

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        deadline = time.monotonic() + 5
        while view:
            try:
                n = self.sock.send(view)
                view = view[n:]
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise BrokerGone("%s: send timed out" % self.id)
                time.sleep(0.001)
            except OSError as e:
                if self.expect_eof:
                    return
                raise BrokerGone("%s: send failed: %s" % (self.id, e))

    def subscribe(self, filters) -> int:
        mid = self.next_mid()
        body = struct.pack("!H", mid) + (b"\x00" if self.version == 5 else b"")
        for f, q in filters:
            body += _field(f) + bytes([q])
        self.send(_packet((SUBSCRIBE << 4) | 2, body))
        return mid

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        body = _field(topic)
        if qos:
            mid = self.next_mid()
            body += struct.pack("!H", mid)
            self.outgoing[mid] = PUBACK if qos == 1 else PUBREC
        if self.version == 5:
            body += PROPERTIES
        self.send(_packet((PUBLISH << 4) | (qos << 1) | (1 if retain else 0), body + payload))

    def ping(self) -> None:
        self.send(_packet(PINGREQ << 4, b""))

    def disconnect(self) -> None:
        self.send(_packet(DISCONNECT << 4, b""))

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def on_readable(self) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.eof = True
            return
        self.buf += data
        while True:
            if len(self.buf) < 2:
                return
            n, mult, i = 0, 1, 1
            while True:
                if i >= len(self.buf):
                    return
                d = self.buf[i]
                n += (d & 0x7F) * mult
                mult *= 128
                i += 1
                if not d & 0x80:
                    break
            if len(self.buf) < i + n:
                return
            b0 = self.buf[0]
            body = bytes(self.buf[i:i + n])
            del self.buf[:i + n]
            self._handle(b0, body)

    def _handle(self, b0: int, body: bytes) -> None:
        ptype = b0 >> 4
        if ptype == PUBLISH:
            qos = (b0 >> 1) & 3
            tl = struct.unpack_from("!H", body, 0)[0]
            topic = body[2:2 + tl].decode()
            pos = 2 + tl
            mid = 0
            if qos:
                mid = struct.unpack_from("!H", body, pos)[0]
                pos += 2
            if self.version == 5:
                n, at = _varint(body, pos)
                if body[at:at + n] != USER_PROPERTY:
                    self.wrong_props += 1
                pos = at + n
            if qos == 2 and mid in self.inbound_qos2:
                self.send(_packet(PUBREC << 4, struct.pack("!H", mid)))
                return
            self.got.append((topic, body[pos:], qos, bool(b0 & 1)))
            if qos == 1:
                self.send(_packet(PUBACK << 4, struct.pack("!H", mid)))
            elif qos == 2:
                self.inbound_qos2.add(mid)
                self.send(_packet(PUBREC << 4, struct.pack("!H", mid)))
            return
        mid = struct.unpack_from("!H", body, 0)[0] if len(body) >= 2 else 0
        if ptype == PUBREL:
            self.inbound_qos2.discard(mid)
            self.send(_packet(PUBCOMP << 4, struct.pack("!H", mid)))
        elif ptype in (PUBACK, PUBREC, PUBCOMP) and self.outgoing.get(mid) == ptype:
            if ptype == PUBREC:
                self.outgoing[mid] = PUBCOMP
                self.send(_packet((PUBREL << 4) | 2, struct.pack("!H", mid)))
            else:
                del self.outgoing[mid]
        else:
            self.control.append((ptype, body))

    def take(self, ptype: int):
        for i, (t, body) in enumerate(self.control):
            if t == ptype:
                del self.control[i]
                return body
        return None


def pump(clients, until, timeout: float = 5.0, proc=None, what: str = "") -> None:
    """Read from every client (acknowledging as needed) until until() is true."""
    sel = selectors.DefaultSelector()
    for c in clients:
        if not c.eof:
            sel.register(c.sock, selectors.EVENT_READ, c)
    deadline = time.monotonic() + timeout
    try:
        while not until():
            if proc is not None and proc.poll() is not None:
                raise BrokerGone("broker exited (status %s) while waiting for %s"
                                 % (proc.returncode, what))
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrokerGone("timed out waiting for %s" % what)
            for key, _ in sel.select(min(left, 0.1)):
                c = key.data
                c.on_readable()
                if c.eof:
                    sel.unregister(c.sock)
                    if not c.expect_eof:
                        raise BrokerGone("broker closed %s's connection while waiting for %s"
                                         % (c.id, what))
    finally:
        sel.close()


def connect_all(port: int, ids, proc=None, wills=None, version: int = 4):
    clients = []
    try:
        for cid in ids:
            clients.append(Client(port, cid, will=(wills or {}).get(cid), version=version))
    except OSError as e:
        for c in clients:
            c.close()
        raise BrokerGone("cannot connect: %s" % e)
    acks = {}

    def done():
        for c in clients:
            if c not in acks:
                body = c.take(CONNACK)
                if body is not None:
                    acks[c] = body
        return len(acks) == len(clients)

    pump(clients, done, proc=proc, what="CONNACK")
    for c, body in acks.items():
        if len(body) < 2 or body[1] != 0:
            raise BrokerGone("%s refused: CONNACK code %d" % (c.id, body[1] if body else -1))
    return clients


def subscribe_all(clients, filters_of, proc=None) -> int:
    """filters_of(client) -> [(filter, qos)]; returns the number of filters granted."""
    mids = {c: c.subscribe(filters_of(c)) for c in clients}
    acks = {}

    def done():
        for c in clients:
            if c not in acks:
                body = c.take(SUBACK)
                if body is not None:
                    acks[c] = body
        return len(acks) == len(clients)

    pump(clients, done, proc=proc, what="SUBACK")
    granted = 0
    for c, body in acks.items():
        if struct.unpack_from("!H", body, 0)[0] != mids[c]:
            raise BrokerGone("%s: SUBACK for the wrong packet id" % c.id)
        codes = 2
        if c.version == 5:
            n, codes = _varint(body, 2)
            codes += n
        granted += sum(1 for code in body[codes:] if code < 0x80)
    return granted


def sync(clients, proc=None) -> None:
    """PINGREQ/PINGRESP on each client: the broker has handled everything sent before."""
    for c in clients:
        c.ping()
    seen = set()

    def done():
        for c in clients:
            if c not in seen and c.take(PINGRESP) is not None:
                seen.add(c)
        return len(seen) == len(clients)

    pump(clients, done, proc=proc, what="PINGRESP")


def disconnect_all(clients, proc=None) -> None:
    for c in clients:
        c.expect_eof = True
        c.disconnect()
    pump(clients, lambda: all(c.eof for c in clients), proc=proc, what="the broker to close")
    for c in clients:
        c.close()


# ---------------------------------------------------------------------------------------------
# Configuration, variants, processes


def free_port() -> int:
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def board_config(src: Path, port: int, dest: Path) -> Path:
    """The board configuration with its listeners replaced by one on 127.0.0.1:port."""
    lines = []
    for line in src.read_text().splitlines():
        word = line.split(None, 1)[0] if line.strip() else ""
        if word in ("listener", "port", "bind_address"):
            continue
        lines.append(line)
    lines.append("listener %d %s" % (port, HOST))
    if PERSISTENCE:  # a fresh journal for each start, beside the configuration
        for old in dest.parent.glob("broker.db*"):
            old.unlink()
        lines += ["persistence true", "persistence_location %s/" % dest.parent,
                  "autosave_interval 1"]
    dest.write_text("\n".join(lines) + "\n")
    return dest


def config_values(src: Path):
    values = {}
    for line in src.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and not parts[0].startswith("#"):
            values[parts[0]] = parts[1]
    return values


def build_mpy(dest: Path = BUILD, arch: str = "host") -> str:
    """Compile the modules a board gets (mpy_source.board_modules), and broker/__main__.py for
    `-m broker`, into dest (build/mpy) for arch (compile_mpy: "" for bytecode only); '' or an
    error."""
    if dest.exists():
        shutil.rmtree(dest)
    for src, dst in board_modules() + [(ROOT / "broker" / "__main__.py", "broker/__main__.py")]:
        err = compile_mpy(src, dest / Path(dst).with_suffix(".mpy"), arch, dst)
        if err:
            return err
    return ""


def romfs_variant() -> str:
    """Pack build/mpy into ROMFS_IMAGE for the ROMFS variant; '' or an error."""
    ROMFS_CWD.mkdir(parents=True, exist_ok=True)
    return build_romfs(BUILD, ROMFS_IMAGE)


def build_wasm32() -> str:
    """The .mpy files and ROMFS image for the 32-bit figures; '' or an error. The webassembly
    port has no native emitter, so viper functions are compiled as bytecode too (a board runs
    them as machine code: four small functions)."""
    err = build_mpy(WASM32_BUILD, "")
    for src in sorted((WASM32 / "py").glob("*.py")):  # its socket layer (tools/wasm32/serve.mjs)
        err = err or compile_mpy(src, WASM32_BUILD / (src.stem + ".mpy"), "", src.name)
    if err:
        return err
    return build_romfs(WASM32_BUILD, WASM32_IMAGE)


def wasm32_variants() -> "tuple[list, str]":
    """The two 32-bit variants, or ([], why not)."""
    node = shutil.which("node")
    if node is None:
        return [], "no node command"
    if not (WASM32 / "node_modules" / "@micropython").is_dir():
        return [], "its npm package is missing (make test-wasm32 installs it)"
    err = build_wasm32()
    if err:
        return [], err
    return [Wasm32Variant(".mpy(32)", node, tree=WASM32_BUILD),
            Wasm32Variant("ROMFS(32)", node, image=WASM32_IMAGE)], ""


class Variant:
    def __init__(self, name: str, cwd: Path, image: "Path | None" = None):
        self.name = name
        self.cwd = cwd
        # with an image, programs start through romfs_boot and the heap grows by its size
        self.prefix = [str(ROMFS_BOOT), str(image)] if image else []
        self.extra_k = -(-image.stat().st_size // 1024) + 1 if image else 0
        self.source = ".mpy" if image else name  # what broker.engine is imported from
        self.rom = image is not None
        self.fig = {}            # figure name -> value
        self.notes = []
        self.started = False     # the broker ran at least once
        self.trace = []          # (heap K, passed, reason), the standard scenario
        self.trace5 = []         # the same for its MQTT 5 variant

    def command(self, heap_k: int, args: list) -> list:
        """micropython with heap_k KB for the program (plus the image, if any) running args."""
        return ([str(MICROPYTHON), "-X", "heapsize=%dK" % (heap_k + self.extra_k)]
                + self.prefix + args)


class Wasm32Variant(Variant):
    """The .mpy files, or their ROMFS image, on the 32-bit webassembly port: the broker served
    by tools/wasm32/serve.mjs, which speaks the probe's protocol too. The image stays outside
    the heap there, as in a board's flash, so heap sizes are the broker's alone."""

    def __init__(self, name: str, node: str, tree: "Path | None" = None,
                 image: "Path | None" = None):
        super().__init__(name, ROOT)
        self.node = node
        self.where = ["--romfs", str(image)] if image else ["--tree", str(tree)]
        self.source = ".mpy"
        self.rom = image is not None

    def command(self, heap_k: int, args: list) -> list:
        if args[0] == str(PROBE):
            mode = ["--probe", "-c", args[1]]
        elif args[0] == "-c":  # smallest_import()
            mode = ["--import-only"]
        else:  # -m broker ARGS
            mode = args[2:]
        return ([self.node, str(WASM32 / "serve.mjs"), "-X", "heapsize=%dK" % heap_k]
                + self.where + mode)


# ---------------------------------------------------------------------------------------------
# Figures from inside the process (tools/mem_probe.py)


class Probe:
    def __init__(self, variant: Variant, conf: Path, heap_k: int, errfile: Path):
        self.errfile = errfile
        with open(errfile, "wb") as err:
            self.proc = subprocess.Popen(
                variant.command(heap_k, [str(PROBE), str(conf)]),
                cwd=variant.cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=err, text=True, bufsize=1)
        self.fd = self.proc.stdout.fileno()  # read raw: a buffered reader hides lines from select
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.fd, selectors.EVENT_READ)
        self.pending = b""

    def line(self, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrokerGone("probe silent for %.0f s" % timeout)
            if self.sel.select(min(left, 0.1)):
                data = os.read(self.fd, 4096)
                if not data:
                    status = self.proc.wait()
                    err = self.errfile.read_text(errors="replace").strip().splitlines()
                    raise BrokerGone("probe exited (status %s)%s"
                                     % (status, ": " + err[-1] if err else ""))
                self.pending += data
        raw, self.pending = self.pending.split(b"\n", 1)
        text = raw.decode(errors="replace").strip()
        log("probe: " + text)
        return text

    def expect(self, prefix: str) -> str:
        while True:
            text = self.line()
            if text.startswith("ERR"):
                raise BrokerGone("probe: " + text)
            if text.startswith(prefix):
                return text

    def mem(self, label: str):
        """(bytes in use, {conns, sessions, subs, retained})."""
        self.proc.stdin.write("MEM %s\n" % label)
        self.proc.stdin.flush()
        parts = self.expect("MEM %s " % label).split()
        counts = dict(p.split("=") for p in parts[3:])
        return int(parts[2]), {k: int(v) for k, v in counts.items()}

    def stop(self) -> None:
        try:
            self.proc.stdin.write("QUIT\n")
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.sel.close()


def measure(variant: Variant, board: Path, tmp: Path) -> None:
    port = free_port()
    conf = board_config(board, port, tmp / ("probe-%s.conf" % variant.name))
    probe = Probe(variant, conf, PROBE_HEAP_K, tmp / ("probe-%s.txt" % variant.name))
    proc = probe.proc
    clients = []
    try:
        base = int(probe.expect("MEM base").split()[2])
        variant.fig["base"] = base
        variant.fig["import"] = int(probe.expect("MEM import").split()[2])
        source = probe.expect("FROM").split()[-1]
        if not source.endswith(variant.source) or variant.rom != source.startswith("/rom/"):
            variant.notes.append("imported %s, not the %s variant's file" % (source, variant.name))
        probe.expect("LISTENING")
        variant.started = True
        idle, _ = probe.mem("idle")
        variant.fig["idle"] = idle

        ids = ["memcl-%02d" % i for i in range(N_CLIENTS)]
        clients = connect_all(port, ids, proc)
        sync(clients, proc)
        # idle: quiet long enough for the engine's idle check (every 0.5 s) to have seen a
        # whole interval with nothing written, after which a client holds no buffers
        time.sleep(IDLE_S)
        with_clients, counts = probe.mem("clients")
        variant.fig["client"] = (with_clients - idle) / N_CLIENTS
        if counts.get("conns") != N_CLIENTS:
            variant.notes.append("probe saw %s connections, expected %d"
                                 % (counts.get("conns"), N_CLIENTS))

        # 64 subscriptions, 8 per client: 4 exact, then 4 wildcard, all 16-byte filters.
        per = N_SUBS // 2 // N_CLIENTS

        def exact(c):
            i = ids.index(c.id)
            return [("sub/c%d/exact/e%02d" % (i, j), 1) for j in range(per)]

        def wild(c):
            i = ids.index(c.id)
            return [("sub/c%d/+/wild/%02d" % (i, j), 1) for j in range(per)]

        granted_e = subscribe_all(clients, exact, proc)
        time.sleep(IDLE_S)
        with_exact, counts_e = probe.mem("exact")
        granted_w = subscribe_all(clients, wild, proc)
        time.sleep(IDLE_S)
        with_subs, counts = probe.mem("subs")
        granted = granted_e + granted_w
        if granted:
            variant.fig["sub"] = (with_subs - with_clients) / granted
        if granted_e:
            variant.fig["sub_exact"] = (with_exact - with_clients) / granted_e
        if granted_w:
            variant.fig["sub_wild"] = (with_subs - with_exact) / granted_w
        if granted != N_SUBS:
            variant.notes.append("only %d of %d subscriptions granted" % (granted, N_SUBS))

        # 16 retained messages: 16-byte topics, 32-byte payloads, QoS 0, from one client.
        for k in range(N_RETAINED):
            topic = "mem/retained/%03d" % k
            assert len(topic) == TOPIC_LEN
            clients[0].publish(topic, (b"%02d" % k) * (PAYLOAD_LEN // 2), 0, True)
        sync(clients[:1], proc)
        time.sleep(IDLE_S)
        with_retained, counts = probe.mem("retained")
        n_ret = counts.get("retained", -1)
        if n_ret < 0:
            n_ret = N_RETAINED
        if n_ret:
            variant.fig["retained"] = (with_retained - with_subs) / n_ret
        if n_ret != N_RETAINED:
            variant.notes.append("%d of %d retained messages kept" % (n_ret, N_RETAINED))

        disconnect_all(clients, proc)
        clients = []
        left, _ = probe.mem("left")
        variant.fig["left"] = left - (idle + (with_retained - with_subs))
        # One more round of the same clients: what a connect/disconnect cycle leaves behind.
        clients = connect_all(port, ids, proc)
        subscribe_all(clients, exact, proc)
        disconnect_all(clients, proc)
        clients = []
        again, _ = probe.mem("again")
        variant.fig["cycle"] = again - left
        # The first MQTT 5 client loads the v5 code (broker.v5, codec5, props), which stays.
        clients = connect_all(port, ["memcl-v5"], proc, version=5)
        subscribe_all(clients, lambda c: [("sub/v5", 1)], proc)
        clients[0].publish("sub/v5", b"v5", 1)
        pump(clients, lambda: clients[0].got and not clients[0].outgoing, proc=proc,
             what="the MQTT 5 client's message")
        if clients[0].wrong_props:
            variant.notes.append("the MQTT 5 message came back without its User Property")
        disconnect_all(clients, proc)
        clients = []
        v5, _ = probe.mem("v5")
        variant.fig["v5_code"] = v5 - again
        variant.fig["v5_idle"] = idle + v5 - again
    except BrokerGone as e:
        variant.notes.append("figures incomplete: %s" % e)
    finally:
        for c in clients:
            c.close()
        probe.stop()


# ---------------------------------------------------------------------------------------------
# The standard scenario, on the broker started per the launch contract


class Broker:
    def __init__(self, variant: Variant, conf: Path, heap_k: int, port: int, errfile: Path):
        self.errfile = errfile
        self.err = open(errfile, "wb")
        self.proc = subprocess.Popen(
            variant.command(heap_k, ["-m", "broker", "-c", str(conf)]),
            cwd=variant.cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=self.err)
        self.port = port

    def stderr(self) -> str:
        self.err.flush()
        return self.errfile.read_text(errors="replace")

    def wait_ready(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "listening on" in self.stderr():
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.01)
        return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.err.close()


def scenario(port: int, proc, version: int = 4) -> None:
    """Raises BrokerGone (with the reason) unless every expected message arrives; version 5:
    the same clients speaking MQTT 5.0, each message (and the will) with one User Property,
    which must arrive with it."""
    ids = ["scen-c%d" % i for i in range(N_CLIENTS)]
    will_id = ids[-1]
    wills = {will_id: ("will/" + will_id, b"gone: " + will_id.encode(), 1, False)}
    clients = connect_all(port, ids, proc, wills, version)
    late = None
    try:
        n = len(clients)
        filters = {}
        for i, c in enumerate(clients):
            filters[c] = [("mem/+/c%d" % i, 2), ("mem/all", 1)]
        filters[clients[0]].append(("will/#", 1))
        granted = subscribe_all(clients, lambda c: filters[c], proc)
        if granted != sum(len(f) for f in filters.values()):
            raise BrokerGone("%d of %d subscriptions granted"
                             % (granted, sum(len(f) for f in filters.values())))

        expected = {c: [] for c in clients}
        for i, c in enumerate(clients):
            to = (i + 1) % n
            for q in (0, 1, 2):
                topic = "mem/q%d/c%d" % (q, to)
                payload = b"%d->%d at qos %d" % (i, to, q)
                c.publish(topic, payload, q)
                expected[clients[to]].append((topic, payload, q, False))
            payload = b"to all from %d" % i
            c.publish("mem/all", payload, i % 3)
            for other in clients:
                expected[other].append(("mem/all", payload, min(i % 3, 1), False))
            c.publish("ret/c%d" % i, b"retained %d" % i, i % 3, True)

        def all_arrived():
            return (all(len(c.got) >= len(expected[c]) for c in clients)
                    and not any(c.outgoing or c.inbound_qos2 for c in clients))

        pump(clients, all_arrived, proc=proc, what="the routed messages")
        for c in clients:
            if sorted(c.got) != sorted(expected[c]):
                missing = [m for m in expected[c] if m not in c.got]
                raise BrokerGone("%s: got %d messages, %d missing (e.g. %r)"
                                 % (c.id, len(c.got), len(missing), missing[:1]))

        # The will: kill the client's connection without DISCONNECT.
        victim = clients.pop()
        victim.close()
        watcher = clients[0]
        before = len(watcher.got)
        pump(clients, lambda: len(watcher.got) > before, proc=proc, what="the will")
        if watcher.got[before][:2] != wills[will_id][:2]:
            raise BrokerGone("expected the will, got %r" % (watcher.got[before],))

        # A new client is still served, and gets every retained message.
        late = connect_all(port, ["scen-late"], proc, version=version)[0]
        subscribe_all([late], lambda c: [("ret/#", 2)], proc)
        pump([late], lambda: len(late.got) >= n and not late.inbound_qos2, proc=proc,
             what="the retained messages")
        want = sorted(("ret/c%d" % i, b"retained %d" % i, i % 3, True) for i in range(n))
        if sorted(late.got) != want:
            raise BrokerGone("retained messages differ: %r" % (sorted(late.got),))
        wrong = sum(c.wrong_props for c in clients + [late])
        if wrong:
            raise BrokerGone("%d messages arrived without their User Property" % wrong)
        disconnect_all(clients + [late], proc)
        late = None
        clients = []
        time.sleep(0.05)
        if proc.poll() is not None:
            raise BrokerGone("broker exited (status %s) after the scenario" % proc.returncode)
    finally:
        for c in clients:
            c.close()
        if late is not None:
            late.close()


_TROUBLE = re.compile(r"(MemoryError.*|Out of memory.*|Internal error.*|Traceback.*)")


def run_once(variant: Variant, board: Path, tmp: Path, heap_k: int, version: int = 4):
    """(started, passed, reason) for one broker run at heap_k, the scenario's clients speaking
    MQTT `version` (4: 3.1.1, 5: 5.0)."""
    port = free_port()
    conf = board_config(board, port, tmp / ("scenario-%s.conf" % variant.name))
    broker = Broker(variant, conf, heap_k, port, tmp / ("stderr-%s.txt" % variant.name))
    try:
        if not broker.wait_ready():
            err = broker.stderr().strip().splitlines()
            return False, False, "did not start: " + (err[-1] if err else "no output")
        try:
            scenario(port, broker.proc, version)
        except BrokerGone as e:
            err = broker.stderr()
            m = _TROUBLE.search(err)
            last = err.strip().splitlines()[-1:] or [""]
            return True, False, "%s; broker: %s" % (e, m.group(1) if m else last[0].strip())
        m = _TROUBLE.search(broker.stderr())
        if m:
            return True, False, "broker: " + m.group(1)
        return True, True, ""
    finally:
        broker.stop()


def smallest_heap(variant: Variant, board: Path, tmp: Path, version: int = 4) -> None:
    """The smallest heap for the standard scenario (version 5: its MQTT 5 variant): fig
    "heap_k" ("heap5_k"), every attempt in trace (trace5)."""
    trace = variant.trace5 if version == 5 else variant.trace
    key = "heap5_k" if version == 5 else "heap_k"

    def attempt(k):
        started, ok, reason = run_once(variant, board, tmp, k, version)
        trace.append((k, ok, reason))
        variant.started = variant.started or started
        log("%s v%d heap %dK: %s %s" % (variant.name, version, k, "pass" if ok else "FAIL",
                                        reason))
        return ok

    variant.fig[key] = bisect(attempt)


def bisect(attempt) -> "int | None":
    """The smallest heap in KB (BISECT_STEP_K steps) for which attempt(k) is true, or None."""
    if not attempt(BISECT_HI_K):
        return None
    lo, hi = BISECT_LO_K - BISECT_STEP_K, BISECT_HI_K  # lo: assumed to fail, hi: passes
    while hi - lo > BISECT_STEP_K:
        mid = lo + (hi - lo) // 2 // BISECT_STEP_K * BISECT_STEP_K
        if attempt(mid):
            hi = mid
        else:
            lo = mid
    # Confirm: the answer passes CONFIRM runs in a row (fragmentation can make a run lucky).
    while hi < BISECT_HI_K and not all(attempt(hi) for _ in range(CONFIRM)):
        hi += BISECT_STEP_K
    return hi


def smallest_import(variant: Variant) -> None:
    """The smallest heap in which the server and the engine import (the import peak)."""
    def ok(k):
        try:
            r = subprocess.run(variant.command(k, ["-c", "import ports.micropython.server;"
                                                         " import broker.engine"]),
                               cwd=variant.cwd, capture_output=True, timeout=30)
        except subprocess.TimeoutExpired:  # the webassembly port may hang on a heap too small
            return False
        return r.returncode == 0

    step = 1
    lo, hi = 0, BISECT_HI_K
    if not ok(hi):
        variant.fig["import_k"] = None
        return
    while hi - lo > step:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    variant.fig["import_k"] = hi


# ---------------------------------------------------------------------------------------------
# The frozen(ARM) column: the firmware of make test-arm under qemu-system-arm (tools/armtest.py)


class ArmVariant(Variant):
    """The broker frozen into MicroPython's QEMU port (Cortex-M3), its figures read by
    tools/qemu/armmem.py in a fresh emulator each: the port has no sockets, so the broker starts
    as on a board but without listeners, and the standard scenario's clients are in-process
    pipes that ports/loop.py serves as sockets. The smallest heap is found on one firmware with
    a 2 MB heap, a filler allocation made first leaving the broker the heap of K KB.

    With app, the column "app(ARM)": the example application (boards/examples/sensorhub, its
    own broker.conf, not the board's), its main.py run as a board runs it: the broker is the
    asyncio front with the application's hooks, whose poller serves the pipes as sockets, while
    its tasks publish readings; idle once it started, and the smallest heap for the standard
    scenario followed by its own checks (a stranger refused by its authenticate hook, cmd/led)."""

    def __init__(self, elf: Path, native: bool, app: bool = False):
        super().__init__("app(ARM)" if app else "frozen(ARM)", ROOT)
        self.elf = elf
        self.native = native
        self.app = app

    def measure(self, board: Path, bisecting: bool) -> None:
        import armtest
        config = (armtest.APP / "broker.conf" if self.app else board).read_text()
        try:
            fig = armtest.arm_heap(self.elf, config, 0, False, self.app)
            self.started = True
            self.fig["import"] = fig.get("import")
            self.fig["idle"] = fig.get("idle")
            if bisecting:
                def attempt(k):
                    why = armtest.arm_heap(self.elf, config, k, True, self.app)["scenario"]
                    self.trace.append((k, not why, why))
                    log("%s heap %dK: %s %s" % (self.name, k, "FAIL" if why else "pass", why))
                    return not why
                self.fig["heap_k"] = bisect(attempt)
        except armtest.FirmwareError as e:
            self.notes.append("figures incomplete: %s" % e)
        self.notes.append("%s; heap figures in the engine without sockets (in-process pipes)"
                          % ("@micropython.native kept" if self.native else "NATIVE=0: bytecode"
                             " only"))
        if self.app:
            self.notes.append("the example application %s (asyncio front + hooks) with its"
                              " broker.conf: idle and the standard scenario while its tasks run"
                              % armtest.APP.relative_to(ROOT))


def arm_variants() -> "tuple[list, str]":
    """The frozen(ARM) variant, or ([], how to get it)."""
    tree = os.environ.get("MICROPY_DIR", "")
    if not tree:
        return [], ("set MICROPY_DIR=DIR (a MicroPython source tree, as for make test-arm) for"
                    " the frozen(ARM) column")
    import armtest
    from firmware import FirmwareError, check_tree
    try:
        path = check_tree(tree, "qemu", ["arm-none-eabi-gcc", "qemu-system-arm"])
        elf = armtest.build(path, armtest.native())
        return [ArmVariant(elf, armtest.native()), ArmVariant(elf, armtest.native(), True)], ""
    except FirmwareError as e:
        return [], str(e)


# ---------------------------------------------------------------------------------------------
# Report


def kb(n) -> str:
    return "n/a" if n is None else "%.1f KB" % (n / 1024)


def b(n) -> str:
    return "n/a" if n is None else "%d B" % round(n)


def heap(k) -> str:
    return "n/a" if k is None else "%dK" % k


def report(variants, board: Path, elapsed: float) -> None:
    cv = config_values(board)
    print()
    version = subprocess.run(
        [str(MICROPYTHON), "-c", "import sys; print('%d.%d.%d' % sys.implementation.version[:3])"],
        capture_output=True, text=True).stdout.strip()
    print("MicroPython %s broker heap (unix port, 64-bit: 32-byte GC blocks; columns marked (32):"
          " the webassembly port, 32-bit: 16-byte GC blocks, as on a board)" % version)
    print("config: %s (max_connections %s, max_subscriptions %s, max_retained_messages %s,"
          " max_packet_size %s)" % (board.relative_to(ROOT) if board.is_relative_to(ROOT)
                                    else board, cv.get("max_connections", "?"),
                                    cv.get("max_subscriptions", "?"),
                                    cv.get("max_retained_messages", "?"),
                                    cv.get("max_packet_size", "?")))
    print("heap = gc.mem_alloc() after gc.collect(), less what the interpreter and the probe held"
          " before the import")
    print()
    cols = [v.name for v in variants]
    rows = [
        ("heap used after import", "import", kb, None, None),
        ("idle after start-up", "idle", kb, "< 32 KB", lambda x: x < TARGET_IDLE),
        ("per connected client (%d idle)" % N_CLIENTS, "client", b, "< 1 KB",
         lambda x: x < TARGET_CLIENT),
        ("per subscription (%d, 16-byte filters)" % N_SUBS, "sub", b, None, None),
        ("per retained message (%d; %d-B topic, %d-B payload)"
         % (N_RETAINED, TOPIC_LEN, PAYLOAD_LEN), "retained", b, None, None),
        ("smallest -X heapsize, standard scenario", "heap_k", heap, "<= 64 KB",
         lambda x: x <= TARGET_HEAP_K),
        ("smallest -X heapsize to import the broker", "import_k", heap, None, None),
        ("heap after the first MQTT 5 client (idle)", "v5_idle", kb, None, None),
        ("smallest -X heapsize, standard scenario, MQTT 5", "heap5_k", heap, "<= 64 KB",
         lambda x: x <= TARGET_HEAP_K),
    ]
    w0 = max(len(r[0]) for r in rows) + 2
    header = "%-*s" % (w0, "figure") + "".join("%12s" % c for c in cols) + "   %-10s %s" % (
        "target", "met (" + "/".join(cols) + ")")
    print(header)
    print("-" * len(header))
    for label, key, fmt, target, test in rows:
        vals = [v.fig.get(key) for v in variants]
        line = "%-*s" % (w0, label) + "".join("%12s" % fmt(x) for x in vals)
        if target:
            met = "/".join("?" if x is None else ("yes" if test(x) else "NO") for x in vals)
            line += "   %-10s %s" % (target, met)
        print(line)
    print()
    print("details:")
    for v in variants:
        f = v.fig
        print("  %s: before the import (interpreter + probe%s, not counted above): %s"
              % (v.name, " + the image" if v.prefix else "", kb(f.get("base"))))
        if v.prefix:
            print("       image %s (%d .mpy files); each heap size above is given to"
                  " micropython plus %dK for it" % (kb(ROMFS_IMAGE.stat().st_size),
                                                    len(list(BUILD.rglob("*.mpy"))), v.extra_k))
        print("       per subscription: exact %s, wildcard %s" % (b(f.get("sub_exact")),
                                                              b(f.get("sub_wild"))))
        print("       after all clients left: %s above idle + retained" % b(f.get("left")))
        print("       a second round of %d clients connecting, subscribing and leaving: %s more"
              % (N_CLIENTS, b(f.get("cycle"))))
        print("       the MQTT 5 code, loaded by the first MQTT 5 client: %s more"
              % kb(f.get("v5_code")))
        for what, trace in (("", v.trace), (" (MQTT 5)", v.trace5)):
            if not trace:
                continue
            print("       heap bisection%s: " % what + ", ".join(
                "%dK %s" % (k, "ok" if ok else "fail") for k, ok, _ in trace))
            fails = [(k, r) for k, ok, r in trace if not ok]
            if fails:
                k, r = max(fails)
                print("       largest failing heap%s %dK: %s" % (what, k, r))
        for note in v.notes:
            print("       note: " + note)
    print()
    print("(the standard scenario stands in for the integration tests: %d clients, each"
          " subscribed to a wildcard and an exact filter, publishing at QoS 0, 1 and 2 with"
          " retained messages, one client with a will killed, then a new client served; its"
          " MQTT 5 variant: the same clients speaking MQTT 5.0, each message and the will with"
          " one User Property, which every copy must arrive with. The heap after the first"
          " MQTT 5 client: idle after start-up plus what one MQTT 5 client connecting,"
          " publishing and leaving left, the v5 code it loaded; %.0f s)"
          % (N_CLIENTS, elapsed))


def main(argv=None) -> int:
    global VERBOSE, PERSISTENCE
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-c", "--config", default=str(ROOT / "boards" / "rp2" / "broker.conf"),
                    help="board configuration (default boards/rp2/broker.conf)")
    ap.add_argument("--only", choices=("py", "mpy", "romfs", "wasm32", "arm"),
                    help="measure one variant (wasm32: only the 32-bit figures; arm: the"
                    " frozen(ARM) and app(ARM) columns, with MICROPY_DIR)")
    ap.add_argument("--no-bisect", action="store_true", help="skip the smallest-heap search")
    ap.add_argument("--persistence", action="store_true",
                    help="with persistence true and a save each second")
    ap.add_argument("-v", "--verbose", action="store_true", help="show each step on stderr")
    args = ap.parse_args(argv)
    VERBOSE = args.verbose
    PERSISTENCE = args.persistence
    board = Path(args.config).resolve()
    if not MICROPYTHON.exists():
        print("error: %s not found (make setup)" % MICROPYTHON, file=sys.stderr)
        return 1
    t0 = time.monotonic()
    variants = []
    failed = False
    if args.only in (None, "py"):
        variants.append(Variant(".py", ROOT))
    if args.only in (None, "mpy", "romfs"):
        err = build_mpy()
        if not err and args.only != "mpy":
            err = romfs_variant()
        if err:
            print("error: %s" % err, file=sys.stderr)
            failed = True
        else:
            if args.only != "romfs":
                variants.append(Variant(".mpy", BUILD))
            if args.only != "mpy":
                variants.append(Variant("ROMFS", ROMFS_CWD, ROMFS_IMAGE))
    wasm32_skipped = ""
    if args.only in (None, "wasm32"):
        more, wasm32_skipped = wasm32_variants()
        variants += more
    arm_skipped = ""
    if args.only in (None, "arm"):
        more, arm_skipped = arm_variants()
        variants += more
    with tempfile.TemporaryDirectory(prefix="mem-") as tmpdir:
        tmp = Path(tmpdir)
        for v in variants:
            print("measuring %s ..." % v.name, file=sys.stderr, flush=True)
            if isinstance(v, ArmVariant):
                v.measure(board, not args.no_bisect)
                if not v.started:
                    failed = True
                continue
            measure(v, board, tmp)
            smallest_import(v)
            if not args.no_bisect:
                smallest_heap(v, board, tmp)
                smallest_heap(v, board, tmp, 5)
            if not v.started:
                failed = True
                print("error: the %s broker could not be started" % v.name, file=sys.stderr)
    report(variants, board, time.monotonic() - t0)
    if wasm32_skipped:
        print("32-bit figures not measured: %s" % wasm32_skipped)
    if arm_skipped:
        print("frozen(ARM) not measured: %s" % arm_skipped)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
