"""Byte-level primitives the hot path needs, in the fastest allocation-free form each runtime has.

Everything works on a buffer plus integer offsets so that no caller ever slices.
"""
import sys

MPY = sys.implementation.name == "micropython"

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Union
    Buffer = Union[bytes, bytearray]
    Key = Union[bytes, int]


if MPY:
    def topic_key(buf, start, end):  # type: ignore[no-untyped-def]
        # FNV-1a folded to a small int: a dict key built without allocating.
        h = 0x811C9DC5 & 0x3FFFFFFF
        i = start
        while i < end:
            h = ((h ^ buf[i]) * 0x01000193) & 0x3FFFFFFF
            i += 1
        return h

    def copy_into(dst, dpos, src, spos, n):  # type: ignore[no-untyped-def]
        i = 0
        while i < n:
            dst[dpos + i] = src[spos + i]
            i += 1

    def equal_at(a, apos, b, bpos, n):  # type: ignore[no-untyped-def]
        i = 0
        while i < n:
            if a[apos + i] != b[bpos + i]:
                return False
            i += 1
        return True

    def utf8_valid(buf, start, end):  # type: ignore[no-untyped-def]
        i = start
        while i < end:
            c = buf[i]
            i += 1
            if c < 0x80:
                if c == 0:
                    return False
                continue
            if 0xC2 <= c <= 0xDF:
                need = 1
                lo = 0x80
                hi = 0xBF
            elif 0xE0 <= c <= 0xEF:
                need = 2
                lo = 0xA0 if c == 0xE0 else 0x80
                hi = 0x9F if c == 0xED else 0xBF
            elif 0xF0 <= c <= 0xF4:
                need = 3
                lo = 0x90 if c == 0xF0 else 0x80
                hi = 0x8F if c == 0xF4 else 0xBF
            else:
                return False
            if i + need > end:
                return False
            c = buf[i]
            if c < lo or c > hi:
                return False
            i += 1
            need -= 1
            while need:
                c = buf[i]
                if c < 0x80 or c > 0xBF:
                    return False
                i += 1
                need -= 1
        return True

else:
    def topic_key(buf: "Buffer", start: int, end: int) -> "Key":
        return bytes(memoryview(buf)[start:end])

    def copy_into(dst: bytearray, dpos: int, src: "Buffer", spos: int, n: int) -> None:
        dst[dpos:dpos + n] = memoryview(src)[spos:spos + n]

    def equal_at(a: "Buffer", apos: int, b: "Buffer", bpos: int, n: int) -> bool:
        return memoryview(a)[apos:apos + n] == memoryview(b)[bpos:bpos + n]

    def utf8_valid(buf: "Buffer", start: int, end: int) -> bool:
        # CPython's strict UTF-8 codec already rejects overlong forms and surrogates
        # [MQTT-1.5.3-1]; U+0000 is the one code point MQTT adds [MQTT-1.5.3-2].
        if buf.find(b"\x00", start, end) >= 0:
            return False
        try:
            str(memoryview(buf)[start:end], "utf-8")
        except UnicodeError:
            return False
        return True
