// A `micropython` command for a 32-bit MicroPython: the official webassembly port (1.29), run by
// Node.js. `make test` runs the core tests with it (tools/mptest.py).
//
//     node tools/wasm32/run.mjs [-X heapsize=N] [--tree DIR]... SCRIPT [ARGS...]
//
// Why: the unix port from PyPI is 64-bit. A Pico's Cortex-M0+ is 32-bit like this port: its
// small ints stop at 2**30 (one more bit and an int is a heap object, which the heap-lock tests
// catch), and its objects are about half the size.
//
// - Each --tree DIR is copied (its files, recursively) into the port's in-memory
//   filesystem at the same absolute path; the working directory is the current one, so
//   relative paths and imports resolve as they would on the host. The copies of .py files lose
//   their machine-code decorators (see interpreted()).
// - Garbage: this port collects only between two calls from JavaScript (WebAssembly cannot scan
//   its own stack), and grows its heap instead, so a script's garbage stays until it ends.
//   -X heapsize=N is only the heap it starts with.
// - Exit status: the SystemExit code, 1 for an uncaught exception (its traceback on stderr).
import fs from "node:fs";
import path from "node:path";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";
import { PYSTACK_WORDS, copyTree, heapSize } from "./port.mjs";

function usage() {
  process.stderr.write("usage: run.mjs [-X heapsize=N] [--tree DIR]... SCRIPT [ARGS...]\n");
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { heap: 128 * 1024, trees: [], script: null, args: [] };
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === "-X" && i + 1 < argv.length && argv[i + 1].startsWith("heapsize=")) {
      opts.heap = heapSize(argv[++i].slice("heapsize=".length));
      if (opts.heap === null) usage();
    } else if (a === "--tree" && i + 1 < argv.length) {
      opts.trees.push(path.resolve(argv[++i]));
    } else if (!a.startsWith("-")) {
      opts.script = path.resolve(a);
      i++;
      break;
    } else {
      usage();
    }
  }
  if (opts.script === null) usage();
  opts.args = argv.slice(i);
  return opts;
}

// This port has no native code emitter, so `@micropython.native` and `@micropython.viper` are
// SyntaxErrors here. The copies lose those lines: the functions under them are plain Python as
// well and run as bytecode (a board's build drops `native` too, tools/mpy_source.py).
const DECORATORS = new Set(["@micropython.native", "@micropython.viper"]);

function interpreted(text) {
  return text.split("\n").filter((line) => !DECORATORS.has(line.trim())).join("\n");
}

// A tree's .py files lose their machine-code decorators; other files are copied as they are.
function copied(name, full) {
  return name.endsWith(".py") ? interpreted(fs.readFileSync(full, "utf8")) : fs.readFileSync(full);
}

const BOOT = `
import sys
def _wasm_main(args):
    import json, os
    cwd, argv = json.loads(args)
    os.chdir(cwd)
    sys.argv[:] = argv
    status = 0
    try:
        with open(argv[0]) as f:
            code = f.read()
        exec(code, {"__name__": "__main__", "__file__": argv[0]})
    except SystemExit as e:
        code = e.args[0] if e.args else 0
        if code is None:
            status = 0
        elif isinstance(code, int):
            status = code
        else:
            sys.stderr.write(str(code) + "\\n")
            status = 1
    except BaseException as e:
        sys.print_exception(e, sys.stderr)
        status = 1
    return status
`;

const opts = parseArgs(process.argv.slice(2));
const out = (data) => process.stdout.write(data);
const err = (data) => process.stderr.write(data);
const loadOptions = {
  heapsize: opts.heap, pystack: PYSTACK_WORDS, stdout: out, stderr: err, linebuffer: false,
};
const mp = await loadMicroPython(loadOptions);
const FS = mp.FS;
for (const tree of opts.trees) copyTree(FS, tree, tree, copied);
FS.mkdirTree(path.dirname(opts.script));
FS.writeFile(opts.script, interpreted(fs.readFileSync(opts.script, "utf8")));
FS.mkdirTree(process.cwd());
FS.chdir(process.cwd());

// as the unix port: the script's directory first
const scriptDir = JSON.stringify(path.dirname(opts.script));
mp.runPython(BOOT + "sys.path[:] = [" + scriptDir + ", '.frozen']\n");
const main = mp.globals.get("_wasm_main");
const status = main(JSON.stringify([process.cwd(), [opts.script].concat(opts.args)]));
process.exitCode = typeof status === "number" ? status : 1;
