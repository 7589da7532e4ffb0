// The MicroPython broker on a 32-bit MicroPython (the webassembly port of 1.29), serving real
// TCP clients through Node.js, with a heap of fixed size as on a board. tools/mem.py runs it to
// read the heap figures, and the smallest heap that runs its standard scenario, at a board's
// word size (16-byte GC blocks).
//
//     node tools/wasm32/serve.mjs [-X heapsize=N] (--tree DIR | --romfs IMAGE) [--probe] ARGS...
//     node tools/wasm32/serve.mjs [-X heapsize=N] (--tree DIR | --romfs IMAGE) --import-only
//
// - --tree DIR: the .mpy files of broker/, ports/ and tools/wasm32/py/ in DIR, copied into the
//   port's filesystem; --romfs IMAGE: the same in a ROMFS image, which the port keeps outside
//   the GC heap as a board keeps its ROMFS partition in flash.
// - ARGS: the broker's, as `micropython -m broker ARGS` takes them (-p PORT, -c FILE, -v): the
//   banner, then "listening on HOST:PORT" on stderr; SIGINT or SIGTERM stops it. The
//   directory holding FILE is copied into the port's filesystem at the same path, with the
//   files the configuration names next to it, and the files of each http_dir.
// - --probe: the protocol of tools/mem_probe.py on stdout and stdin ("MEM base",
//   "MEM import", "FROM", "LISTENING", then "MEM <label>" answered per line, "QUIT").
// - --import-only: `import ports.micropython.server`, exit status 0 when it fits in the heap.
// - It listens on 127.0.0.1 only, whatever the configuration says. A bridge's connection goes
//   out through Node as well.
// - It has no TLS, and cannot check a password (passwordFile() says why): a TLS listener or
//   bridge, or a password_file, stops start-up with one line saying so.
//
// How: the sockets are Node's; their bytes cross into the port through two buffers in its C
// heap (tools/wasm32/py/socket.py), and every event is one call of the server's step(), after
// which the port collects garbage (it cannot during a call: a board collects whenever its heap
// is full, so it needs no more heap than this). The GC heap would grow on demand: this takes
// all the C heap it could grow into first, so a heap of N is all the broker gets. One thing
// differs from a board: where start-up runs out of heap, the port sometimes hangs instead of
// raising MemoryError (tools/mem.py counts a start-up that never says "listening" as failed).
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import readline from "node:readline";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";
import { PYSTACK_WORDS, copyTree, heapSize } from "./port.mjs";

const INBOX = 4096;
const OUTBOX = 256 * 1024;
const TICK_MS = 100;
const CLOSE = 0xffff;
const CONNECT = 0xfffe;
const HOST = "127.0.0.1";

function usage() {
  process.stderr.write("usage: serve.mjs [-X heapsize=N] (--tree DIR | --romfs IMAGE)"
    + " ([--probe] ARGS... | --import-only)\n");
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { heap: 64 * 1024, tree: null, romfs: null, probe: false, importOnly: false,
    args: [] };
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i];
    const next = argv[i + 1];
    if (a === "--import-only") {
      opts.importOnly = true;
    } else if (a === "--probe") {
      opts.probe = true;
    } else if (a === "-X" && next !== undefined && next.startsWith("heapsize=")) {
      opts.heap = heapSize(next.slice("heapsize=".length));
      if (opts.heap === null) usage();
      i++;
    } else if ((a === "--tree" || a === "--romfs") && next !== undefined) {
      opts[a.slice(2)] = next;
      i++;
    } else {
      break;
    }
  }
  opts.args = argv.slice(i);
  if ((opts.tree === null) === (opts.romfs === null) || (opts.importOnly && opts.args.length)) {
    usage();
  }
  return opts;
}

function copyFiles(FS, dir) {
  FS.mkdirTree(dir);
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = dir + "/" + entry.name;
    if (entry.isFile()) FS.writeFile(full, fs.readFileSync(full));
  }
}

// Every free byte of the C heap, largest pieces first, so that the GC heap cannot add an area.
// Calls between JavaScript and Python still malloc a few bytes each (argument and result slots,
// short strings), so 64 holes of 64 bytes are left, none next to another: too small for the GC
// heap to grow into.
function fillCHeap(module) {
  const holes = [];
  for (let i = 0; i < 64; i++) {
    holes.push(module._malloc(64));
    module._malloc(64);
  }
  for (let size = 1 << 26; size >= 16;) {
    if (module._malloc(size) === 0) size >>= 1;
  }
  for (const p of holes) module._free(p);
}

// FILE:LINE of the configuration's password_file line, or null. This port cannot check a
// password: a check is 1,000 hash rounds, whose garbage outgrows the heap before the port can
// collect it (only between two calls), so the CONNECT would never be answered. A board
// collects as it goes.
function passwordFile(args) {
  const c = args.indexOf("-c");
  if (c < 0 || c + 1 >= args.length) return null;
  const lines = fs.readFileSync(args[c + 1], "utf8").split("\n");
  const n = lines.findIndex((line) => line.trim().split(/\s+/)[0] === "password_file");
  return n < 0 ? null : args[c + 1] + ":" + (n + 1);
}

// The directories of the configuration's http_dir lines, whose files the port serves.
function httpDirs(file) {
  return fs.readFileSync(file, "utf8").split("\n").map((line) => line.trim().split(/\s+/))
    .filter((words) => words[0] === "http_dir" && words.length > 1).map((words) => words[1]);
}

// The port prints a line each time the wasm memory may not grow; those lines are dropped.
const writeStderr = process.stderr.write.bind(process.stderr);
process.stderr.write = (chunk, ...rest) => {
  if (typeof chunk === "string" && chunk.startsWith("Cannot enlarge memory")) return true;
  return writeStderr(chunk, ...rest);
};

const opts = parseArgs(process.argv.slice(2));
let captured = null;
const decoder = new TextDecoder();
const options = {
  heapsize: opts.heap, pystack: PYSTACK_WORDS, linebuffer: false,
  stdout: (bytes) => {
    if (captured !== null) captured += decoder.decode(bytes);
    else process.stdout.write(bytes);
  },
  stderr: (bytes) => writeStderr(bytes),
};
if (opts.romfs !== null) options.romfs = fs.readFileSync(opts.romfs);
const mp = await loadMicroPython(options);
const M = mp._module;
const FS = mp.FS;
const cwd = "/app";
const mpyOnly = (name, full) => (name.endsWith(".mpy") ? fs.readFileSync(full) : null);
if (opts.tree !== null) copyTree(FS, opts.tree, cwd, mpyOnly);
FS.mkdirTree(cwd);
const config = opts.args.indexOf("-c");
if (config >= 0 && config + 1 < opts.args.length && fs.existsSync(opts.args[config + 1])) {
  copyFiles(FS, path.dirname(path.resolve(opts.args[config + 1])));
  for (const dir of httpDirs(opts.args[config + 1])) {
    copyTree(FS, path.resolve(dir), path.resolve(dir), (name, full) => fs.readFileSync(full));
  }
}

captured = "";
mp.runPython("import micropython\nmicropython.mem_info()");
const info = /max new split: (\d+)/.exec(captured);
captured = null;
if (!info) {
  writeStderr("serve.mjs: this port's mem_info() names no heap growth\n");
  process.exit(2);
}
const growth = parseInt(info[1], 10);
const inAddr = M._malloc(INBOX);
const outAddr = M._malloc(OUTBOX);
M.HEAPU8.fill(0, outAddr, outAddr + 4);
mp.runPython("import os, sys\nos.chdir('" + cwd + "')\nsys.path[:] = ['', '/rom', '.frozen']\n"
  + "import socket, wasm32_broker\n"
  + "socket.setup(" + [inAddr, INBOX, outAddr, OUTBOX].join(", ") + ")");

// Python's functions, looked up once: a call passes small ints and strings, and compiles
// nothing (a compiled snippet would take heap a board's broker does not need).
const b = mp.pyimport("wasm32_broker");
const shim = mp.pyimport("socket");
const fn = {};
for (const name of ["collect", "base", "import_server", "configure", "load", "loaded", "start",
  "plan", "listening", "port", "step", "ready", "mem", "stop"]) {
  fn[name] = b[name];
}
for (const name of ["connected", "opened", "refused", "arrived", "unread", "hung_up", "blocked"]) {
  fn[name] = shim[name];
}

function call(name, ...args) {
  try {
    return fn[name](...args);
  } catch (e) {
    const what = (e.type || e.name) + ": " + String(e.message).trimEnd();
    writeStderr("serve.mjs: " + name + ": " + what + "\n");
    process.exit(1);
  }
}

const conns = new Map();  // sid -> net.Socket

// Send on what the broker wrote during the last call, and close what it closed.
function drain() {
  const heap = M.HEAPU8;
  const used = heap[outAddr] | (heap[outAddr + 1] << 8) | (heap[outAddr + 2] << 16)
    | (heap[outAddr + 3] << 24);
  let pos = outAddr + 4;
  const end = pos + used;
  while (pos < end) {
    const sid = heap[pos] | (heap[pos + 1] << 8);
    const n = heap[pos + 2] | (heap[pos + 3] << 8);
    pos += 4;
    const sock = conns.get(sid);
    if (n === CLOSE) {
      if (sock !== undefined) {
        // close() as a board's: what was written goes first, then the socket is gone and
        // what the client still sends is refused (end() alone would keep reading it)
        conns.delete(sid);
        if (sock.connecting) sock.destroy();
        else sock.end(() => sock.destroy());
      }
      continue;
    }
    if (n === CONNECT) {
      const port = heap[pos] | (heap[pos + 1] << 8);
      const len = heap[pos + 2] | (heap[pos + 3] << 8);
      const host = decoder.decode(heap.subarray(pos + 4, pos + 4 + len));
      pos += 4 + len;
      connectOut(sid, host, port);
      continue;
    }
    if (sock !== undefined && !sock.write(Buffer.from(heap.subarray(pos, pos + n)))) {
      // what the kernel did not take waits in Node: the broker sees a full socket, as on a
      // board, until it drains
      call("blocked", sid, true);
    }
    pos += n;
  }
  heap.fill(0, outAddr, outAddr + 4);
}

// A board's loop steps again at once while its poll finds a socket ready (a connection whose
// output its socket takes: a file of http_dir goes out a few pieces per step); Node's own
// events come first, as the other sockets' turns.
let again = false;
function step() {
  call("step");
  drain();
  if (!again && call("ready")) {
    again = true;
    setImmediate(() => {
      again = false;
      step();
    });
  }
}

function stop(status) {
  call("stop", opts.probe);
  drain();
  process.exit(status);
}

fillCHeap(M);
if (opts.importOnly) process.exit(call("import_server"));
if (opts.probe) {
  call("collect");
  call("base");
}
const configured = call("configure", JSON.stringify(opts.args), growth);
if (configured >= 0) process.exit(configured);
const passwords = passwordFile(opts.args);
if (passwords !== null) {
  writeStderr("Error: " + passwords + ": password_file: the webassembly port cannot check a"
    + " password (it collects garbage only between two events, and a check makes more than"
    + " its heap holds)\n");
  process.exit(1);
}
if (call("load") !== 0) process.exit(1);
if (opts.probe) call("loaded");
if (call("start", opts.probe) !== 0) process.exit(1);
// the heap plan reads what is in use: only once what start-up left is collected
call("collect");
if (call("plan") !== 0) process.exit(1);

// Per connection: the chunks the broker has not read yet (it stops reading a client whose
// output is over its cap), and whether the client has gone once they are read.
const pending = new Map();  // sid -> {sock, chunks, ended}

// Hand sid's chunks to the broker, one inbox at a time, until it stops reading them.
function deliver(sid) {
  const p = pending.get(sid);
  if (p === undefined) return;
  while (p.chunks.length > 0) {
    const chunk = p.chunks[0];
    const part = chunk.subarray(0, INBOX);
    M.HEAPU8.set(part, inAddr);
    call("arrived", sid, part.length);
    step();
    const used = part.length - call("unread", sid);
    if (used === chunk.length) p.chunks.shift();
    else p.chunks[0] = chunk.subarray(used);
    if (used === 0) {
      p.sock.pause();
      return;
    }
  }
  p.sock.resume();
  if (p.ended) {
    pending.delete(sid);
    call("hung_up", sid);
    step();
  }
}

// Wire sock, numbered sid, to the broker: its bytes in, its end, its drained writes.
function attach(sid, sock) {
  conns.set(sid, sock);
  pending.set(sid, { sock, chunks: [], ended: false });
  sock.setNoDelay(true);
  sock.on("drain", () => {
    call("blocked", sid, false);
    step();
  });
  sock.on("data", (data) => {
    const p = pending.get(sid);
    if (p === undefined) return;
    p.chunks.push(data);
    if (p.chunks.length === 1) deliver(sid);
  });
  const gone = () => {
    conns.delete(sid);
    const p = pending.get(sid);
    if (p !== undefined && !p.ended) {
      p.ended = true;
      deliver(sid);
    }
  };
  sock.on("end", gone);
  sock.on("error", gone);
  sock.on("close", gone);
}

// A bridge's connection: opened() once it is up, refused() if it never is; the broker may
// close it first (conns no longer holds it).
function connectOut(sid, host, port) {
  const sock = net.connect({ host, port });
  conns.set(sid, sock);
  const failed = () => {
    if (conns.get(sid) === sock) {
      conns.delete(sid);
      call("refused", sid);
      step();
    }
  };
  sock.once("error", failed);
  sock.once("connect", () => {
    sock.off("error", failed);
    if (conns.get(sid) !== sock) return;
    attach(sid, sock);
    call("opened", sid);
    step();
  });
}

let nextSid = 1;  // socket.py numbers outgoing connections from 0x8000
const server = net.createServer((sock) => {
  const sid = nextSid++;
  attach(sid, sock);
  call("connected", sid, sock.remotePort || 0);  // undefined once the peer has reset it
  step();
});
server.on("error", (e) => {
  const why = e.code === "EADDRINUSE" ? "address already in use" : e.message;
  writeStderr("Error: cannot listen on " + HOST + ":" + call("port") + ": " + why + "\n");
  process.exit(1);
});
server.listen(call("port"), HOST, () => call("listening", opts.probe));
setInterval(() => {
  step();
  for (const sid of pending.keys()) deliver(sid);
}, TICK_MS);
process.on("SIGINT", () => stop(0));
process.on("SIGTERM", () => stop(0));

if (opts.probe) {
  const rl = readline.createInterface({ input: process.stdin });
  rl.on("line", (line) => {
    if (line.startsWith("QUIT")) stop(0);
    if (line.startsWith("MEM")) {
      call("collect");
      call("mem", line.slice(3).trim());
    }
  });
  rl.on("close", () => stop(0));
}
