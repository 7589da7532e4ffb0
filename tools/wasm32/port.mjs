// What run.mjs and serve.mjs both give the webassembly port.
import fs from "node:fs";
import path from "node:path";

// Python frames live on a separate stack in this port; its default (2K words) is too shallow
// for the test runner calling the broker calling hashlib.
export const PYSTACK_WORDS = 16 * 1024;

// The bytes `-X heapsize=` names ("64K", "2M", "65536"), as the micropython command reads it;
// null for anything else.
export function heapSize(text) {
  const m = /^(\d+)([kKmM]?)$/.exec(text);
  if (!m) return null;
  return parseInt(m[1], 10) * { "": 1, k: 1024, K: 1024, m: 1048576, M: 1048576 }[m[2]];
}

const SKIP_DIRS = new Set(["__pycache__", ".git", "node_modules", ".venv", ".mypy_cache"]);

// Copy the files under dir, recursively, into the port's in-memory filesystem at dest.
// contents(name, full) gives what to write for one file, or null to leave it out.
export function copyTree(FS, dir, dest, contents) {
  FS.mkdirTree(dest);
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (!SKIP_DIRS.has(entry.name)) copyTree(FS, full, dest + "/" + entry.name, contents);
    } else if (entry.isFile()) {
      const data = contents(entry.name, full);
      if (data !== null) FS.writeFile(dest + "/" + entry.name, data);
    }
  }
}
