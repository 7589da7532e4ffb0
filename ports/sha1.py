"""SHA-1 (FIPS 180-4) for the WebSocket handshake's Sec-WebSocket-Accept, on a MicroPython whose
hashlib has none (the webassembly port; a board built without TLS). Run once per handshake, on
about 60 bytes: speed does not matter here."""

_M = 0xFFFFFFFF


def _rol(x: int, n: int) -> int:
    return ((x << n) | (x >> (32 - n))) & _M


def sha1(data: bytes) -> bytes:
    h0, h1, h2, h3, h4 = 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0
    n = len(data)
    msg = bytearray(data)
    msg.append(0x80)
    while len(msg) % 64 != 56:
        msg.append(0)
    bits = n * 8
    for i in range(7, -1, -1):
        msg.append((bits >> (i * 8)) & 0xFF)
    w = [0] * 80
    for off in range(0, len(msg), 64):
        for i in range(16):
            j = off + i * 4
            w[i] = (msg[j] << 24) | (msg[j + 1] << 16) | (msg[j + 2] << 8) | msg[j + 3]
        for i in range(16, 80):
            w[i] = _rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1)
        a, b, c, d, e = h0, h1, h2, h3, h4
        for i in range(80):
            if i < 20:
                f = (b & c) | (~b & d)
                k = 0x5A827999
            elif i < 40:
                f = b ^ c ^ d
                k = 0x6ED9EBA1
            elif i < 60:
                f = (b & c) | (b & d) | (c & d)
                k = 0x8F1BBCDC
            else:
                f = b ^ c ^ d
                k = 0xCA62C1D6
            t = (_rol(a, 5) + (f & _M) + e + k + w[i]) & _M
            e = d
            d = c
            c = _rol(b, 30)
            b = a
            a = t
        h0 = (h0 + a) & _M
        h1 = (h1 + b) & _M
        h2 = (h2 + c) & _M
        h3 = (h3 + d) & _M
        h4 = (h4 + e) & _M
    out = bytearray(20)
    for i, h in enumerate((h0, h1, h2, h3, h4)):
        for j in range(4):
            out[i * 4 + j] = (h >> (24 - j * 8)) & 0xFF
    return bytes(out)
