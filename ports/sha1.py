"""SHA-1 (FIPS 180-4) for the WebSocket handshake's Sec-WebSocket-Accept, on a MicroPython whose
hashlib has none (the webassembly port; a board built without TLS). Run once per handshake, on
about 60 bytes, so speed does not matter; memory does: each 32-bit word is kept as two 16-bit
halves, so that no value reaches 2**30 and none becomes an integer on a 32-bit board's heap (the
32-bit test port, which collects only between two events, runs out of heap on those)."""

_K = (0x5A82, 0x7999, 0x6ED9, 0xEBA1, 0x8F1B, 0xBCDC, 0xCA62, 0xC1D6)


def _rol(h: int, lo: int, n: int) -> "tuple[int, int]":
    if n >= 16:
        h, lo = lo, h
        n -= 16
    if n == 0:
        return h, lo
    return (((h << n) | (lo >> (16 - n))) & 0xFFFF,
            ((lo << n) | (h >> (16 - n))) & 0xFFFF)


def sha1(data: bytes) -> bytes:
    st = [0x6745, 0x2301, 0xEFCD, 0xAB89, 0x98BA, 0xDCFE, 0x1032, 0x5476, 0xC3D2, 0xE1F0]
    n = len(data)
    msg = bytearray(data)
    msg.append(0x80)
    while len(msg) % 64 != 56:
        msg.append(0)
    bits = n * 8
    for i in range(7, -1, -1):
        msg.append((bits >> (i * 8)) & 0xFF)
    w = [0] * 160  # the schedule, two halves a word
    for off in range(0, len(msg), 64):
        for i in range(16):
            j = off + i * 4
            w[2 * i] = (msg[j] << 8) | msg[j + 1]
            w[2 * i + 1] = (msg[j + 2] << 8) | msg[j + 3]
        for i in range(16, 80):
            h = w[2 * i - 6] ^ w[2 * i - 16] ^ w[2 * i - 28] ^ w[2 * i - 32]
            lo = w[2 * i - 5] ^ w[2 * i - 15] ^ w[2 * i - 27] ^ w[2 * i - 31]
            w[2 * i], w[2 * i + 1] = _rol(h, lo, 1)
        ah, al, bh, bl, ch, cl, dh, dl, eh, el = st
        for i in range(80):
            if i < 20:
                fh = (bh & ch) | (~bh & dh & 0xFFFF)
                fl = (bl & cl) | (~bl & dl & 0xFFFF)
            elif i < 40 or i >= 60:
                fh = bh ^ ch ^ dh
                fl = bl ^ cl ^ dl
            else:
                fh = (bh & ch) | (bh & dh) | (ch & dh)
                fl = (bl & cl) | (bl & dl) | (cl & dl)
            k = (i // 20) * 2
            rh, rl = _rol(ah, al, 5)
            tl = rl + fl + el + _K[k + 1] + w[2 * i + 1]
            th = (rh + fh + eh + _K[k] + w[2 * i] + (tl >> 16)) & 0xFFFF
            eh, el = dh, dl
            dh, dl = ch, cl
            ch, cl = _rol(bh, bl, 30)
            bh, bl = ah, al
            ah, al = th, tl & 0xFFFF
        for j, v in enumerate((ah, al, bh, bl, ch, cl, dh, dl, eh, el)):
            if j & 1:
                s = st[j] + v
                st[j] = s & 0xFFFF
                st[j - 1] = (st[j - 1] + (s >> 16)) & 0xFFFF
            else:
                st[j] += v
        for j in range(0, 10, 2):
            st[j] &= 0xFFFF
    out = bytearray(20)
    for j in range(10):
        out[2 * j] = st[j] >> 8
        out[2 * j + 1] = st[j] & 0xFF
    return bytes(out)
