// What run.mjs and serve.mjs both give the webassembly port.

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
