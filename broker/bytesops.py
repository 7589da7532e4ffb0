"""Byte-level primitives the hot path needs, in the fastest allocation-free form each runtime has.

Everything works on a buffer plus integer offsets so that no caller ever slices.
"""
import sys

MPY = sys.implementation.name == "micropython"

if MPY:
    import micropython
    from micropython import const

    # Viper: machine-word loops over raw bytes, about 16 times faster than bytecode and
    # allocation-free. Every int stays below 2**30 so that nothing becomes a heap int on a board.

    @micropython.viper
    def topic_key(buf: ptr8, start: int, end: int) -> int:
        # djb2 kept to 24 bits: a dict key built without allocating.
        h = 5381
        i = start
        while i < end:
            h = ((h << 5) + h + buf[i]) & 0xFFFFFF
            i += 1
        return h

    @micropython.viper
    def copy_into(dst: ptr8, dpos: int, src: ptr8, spos: int, n: int):
        i = 0
        while i < n:
            dst[dpos + i] = src[spos + i]
            i += 1

    @micropython.viper
    def equal_at(a: ptr8, apos: int, b: ptr8, bpos: int, n: int) -> bool:
        i = 0
        while i < n:
            if a[apos + i] != b[bpos + i]:
                return False
            i += 1
        return True

    @micropython.viper
    def utf8_valid(buf: ptr8, start: int, end: int) -> bool:
        i = start
        while i < end:
            c = buf[i]
            i += 1
            if c < 0x80:
                if c == 0:
                    return False
                continue
            lo = 0x80
            hi = 0xBF
            if 0xC2 <= c <= 0xDF:
                need = 1
            elif 0xE0 <= c <= 0xEF:
                need = 2
                if c == 0xE0:
                    lo = 0xA0
                elif c == 0xED:
                    hi = 0x9F
            elif 0xF0 <= c <= 0xF4:
                need = 3
                if c == 0xF0:
                    lo = 0x90
                elif c == 0xF4:
                    hi = 0x8F
            else:
                return False
            if i + need > end:
                return False
            c = buf[i]
            if c < lo or c > hi:
                return False
            i += 1
            need -= 1
            while need > 0:
                c = buf[i]
                if c < 0x80 or c > 0xBF:
                    return False
                i += 1
                need -= 1
        return True

else:
    # CPython's forms: a module of their own, which a board does not carry and mypyc compiles
    from broker.bytesops_host import (  # noqa: F401
        const, copy_into, equal_at, micropython, topic_key, utf8_valid,
    )
