"""The MicroPython port's check before a buffer or a kept message (ports/micropython/server.py,
_heap_low): a sixteenth of the heap stays free, and the heap is counted (gc.mem_free() and
gc.mem_alloc(), which walk the whole allocation table) only when what was checked since the last
count may have used the room that count found. MicroPython only (the port's module)."""
from support import MPY, SkipTest


class _Heap:
    """Stands in for the gc module: a heap of `total` bytes with `free` of them free, and how
    many times it was counted and collected."""

    def __init__(self, total: int, free: int) -> None:
        self.total = total
        self.free = free
        self.counts = 0
        self.collects = 0

    def mem_free(self) -> int:
        self.counts += 1
        return self.free

    def mem_alloc(self) -> int:
        return self.total - self.free

    def collect(self) -> None:
        self.collects += 1


class _Port:
    """`with _Port(heap) as server:` the port's module, counting `heap` instead of its own."""

    def __init__(self, heap: _Heap) -> None:
        if not MPY:
            raise SkipTest("the MicroPython port's check")
        try:
            from ports.micropython import server
        except ImportError:  # (tools/wasm32/run.mjs gives no socket module: serve.mjs does)
            raise SkipTest("no socket module to import the port with")
        self.server = server
        self.heap = heap

    def __enter__(self) -> "object":
        self.server.gc = self.heap  # type: ignore[attr-defined]
        self.server._room = 0  # type: ignore[attr-defined]
        return self.server

    def __exit__(self, *exc: "object") -> None:
        import gc
        self.server.gc = gc  # type: ignore[attr-defined]
        self.server._room = 0  # type: ignore[attr-defined]


def test_checks_after_a_count_spend_half_the_room_it_found() -> None:
    heap = _Heap(16000, 9000)  # 8,000 above the sixteenth kept free: 4,000 to spend
    with _Port(heap) as server:
        assert not server._heap_low(0)  # type: ignore[attr-defined]
        assert heap.counts == 1
        for _ in range(39):
            assert not server._heap_low(100)  # type: ignore[attr-defined]
        assert heap.counts == 1  # 3,900 of the 4,000 spent, nothing counted
        heap.free = 5000  # (what the checks let through was allocated, and more)
        assert not server._heap_low(200)  # type: ignore[attr-defined]
        assert heap.counts == 2  # past the room: counted again, 4,000 - 200 above the sixteenth
        assert server._room == (5000 - 200 - 1000) >> 1  # type: ignore[attr-defined]


def test_a_heap_left_with_less_than_a_sixteenth_free_is_low_after_a_collection() -> None:
    heap = _Heap(16000, 1500)
    with _Port(heap) as server:
        assert not server._heap_low(400)  # type: ignore[attr-defined]  # 1,100 left: enough
        assert heap.collects == 0
        assert server._heap_low(600)  # type: ignore[attr-defined]  # 900 left: low
        assert heap.collects == 1  # (what looked used may have been garbage)
        assert server._room == 0  # type: ignore[attr-defined]  # the next check counts again
        counts = heap.counts
        assert server._heap_low(600)  # type: ignore[attr-defined]
        assert heap.counts > counts


def test_an_accepted_connection_has_the_heap_counted_now() -> None:
    # the accept path refuses a connection (CONNACK 0x03) from what the heap holds now, not
    # from the room a count found before the connections accepted since
    heap = _Heap(16000, 9000)
    with _Port(heap) as server:
        assert not server._heap_low(0)  # type: ignore[attr-defined]
        heap.free = 900
        assert server._heap_low(0) is False  # type: ignore[attr-defined]  # the room counted
        assert server._heap_low_now(0)  # type: ignore[attr-defined]
