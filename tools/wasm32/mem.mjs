// The heap the MicroPython broker keeps on a 32-bit MicroPython (the webassembly port): after
// import and idle after start-up, as tools/mem.py reads them on the 64-bit unix port.
//
//     node tools/wasm32/mem.mjs CONFIG --tree DIR      .mpy files in DIR (broker/, ports/)
//     node tools/wasm32/mem.mjs CONFIG --romfs IMAGE   the same in a ROMFS image
//
// Prints "MEM base N", "MEM import N", "MEM idle N": bytes in use after a collection, the last
// two less base (the interpreter and what the probe imported first). The port has no sockets:
// the server is built (tables, read buffer, poller) but opens no listener, and a stand-in
// `socket` module with the four constants server.py names at import is loaded before base.
// The port collects garbage only between two calls from JavaScript, so every step is its own.
import fs from "node:fs";
import path from "node:path";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";

const STUB = "/wasm32-stub";

function usage() {
  process.stderr.write("usage: mem.mjs CONFIG (--tree DIR | --romfs IMAGE)\n");
  process.exit(2);
}

function copyTree(FS, dir, dest) {
  FS.mkdirTree(dest);
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) copyTree(FS, full, dest + "/" + entry.name);
    else if (entry.name.endsWith(".mpy")) FS.writeFile(dest + "/" + entry.name, fs.readFileSync(full));
  }
}

const [config, how, where] = process.argv.slice(2);
if (!config || !where || (how !== "--tree" && how !== "--romfs")) usage();
const options = { heapsize: 256 * 1024, pystack: 16 * 1024, linebuffer: true,
  stdout: (line) => process.stdout.write(line + "\n"),
  stderr: (line) => process.stderr.write(line + "\n") };
if (how === "--romfs") options.romfs = fs.readFileSync(where);
const mp = await loadMicroPython(options);
const FS = mp.FS;
FS.mkdirTree(STUB);
FS.writeFile(STUB + "/socket.py", "AF_INET = 2\nSOCK_STREAM = 1\nSOL_SOCKET = 1\nSO_REUSEADDR = 2\n");
FS.writeFile(STUB + "/broker.conf", fs.readFileSync(config));
let cwd = "/app";
if (how === "--tree") copyTree(FS, path.resolve(where), cwd);
else cwd = STUB;  // holds no broker/: imports come from /rom
FS.mkdirTree(cwd);

const steps = [
  "import gc, os, sys\nos.chdir(" + JSON.stringify(cwd) + ")\n"
    + "sys.path[:] = ['', '/rom', " + JSON.stringify(STUB) + ", '.frozen']\n"
    + "import select, socket, time\ngc.collect()",
  "_BASE = gc.mem_alloc()\nprint('MEM base', _BASE)",
  "from ports.micropython.launch import load\n_PARSED = load(['-c', '" + STUB + "/broker.conf'])\n"
    + "gc.collect()",
  "print('MEM import', gc.mem_alloc() - _BASE, sys.modules['broker.engine'].__file__)",
  "from ports.micropython.server import Server\n_SERVER = Server(_PARSED[0])\ngc.collect()",
  "print('MEM idle', gc.mem_alloc() - _BASE)",
];
for (const step of steps) {
  try {
    mp.runPython(step);
  } catch (e) {
    process.stderr.write("mem.mjs: " + e.message + "\n");
    process.exit(1);
  }
}
