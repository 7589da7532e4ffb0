"""The HTTP side of a websockets listener: the request that opens a WebSocket connection (RFC
6455 section 4.2), and plain GET requests for http_dir's files, as mosquitto serves them. Loaded
by the first request on a websockets listener; start-up and per-request code only."""
import binascii
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ports.websocket import Ws

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_OPEN = 2  # ports.websocket's phases
_HTTP = 1
_PIECE = 512  # a file goes out through a buffer this size
_S_IFDIR = 0x4000

_REASONS = {400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            426: "Upgrade Required"}

# Content-Type by suffix: what a dashboard page is made of
_TYPES = {
    "html": "text/html; charset=utf-8", "htm": "text/html; charset=utf-8",
    "js": "text/javascript", "mjs": "text/javascript", "css": "text/css",
    "json": "application/json", "txt": "text/plain; charset=utf-8", "svg": "image/svg+xml",
    "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif",
    "ico": "image/x-icon", "wasm": "application/wasm", "map": "application/json",
}


def refuse(ws: "Ws", status: int, extra: str = "") -> None:
    """Answer with an error status, then close."""
    body = "%d %s\n" % (status, _REASONS[status])
    ws.resp = ("HTTP/1.1 %d %s\r\n%sContent-Type: text/plain\r\nContent-Length: %d\r\n"
               "Connection: close\r\n\r\n%s" % (status, _REASONS[status], extra, len(body),
                                                 body)).encode()
    ws.phase = _HTTP


def answer(ws: "Ws", req: bytearray, end: int) -> None:
    """Answer the request whose head is req[0:end]: ws.resp, and ws.file or ws.phase."""
    try:
        lines = bytes(req[0:end]).decode().split("\r\n")
    except UnicodeError:
        refuse(ws, 400)
        return
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        refuse(ws, 400)
        return
    headers: "dict[str, str]" = {}
    for line in lines[1:]:
        if not line:
            continue
        c = line.find(":")
        if c <= 0:
            refuse(ws, 400)
            return
        name = line[:c].strip().lower()
        value = line[c + 1:].strip()
        headers[name] = headers[name] + "," + value if name in headers else value
    if "websocket" in _tokens(headers.get("upgrade", "")):
        _upgrade(ws, parts[0], headers)
    elif parts[0] != "GET" and parts[0] != "HEAD":
        refuse(ws, 405)
    else:
        _static(ws, parts[1], parts[0] == "HEAD")


def _tokens(value: str) -> "list[str]":
    return [t.strip().lower() for t in value.split(",")]


def _upgrade(ws: "Ws", method: str, headers: "dict[str, str]") -> None:
    key = headers.get("sec-websocket-key", "")
    if method != "GET" or "upgrade" not in _tokens(headers.get("connection", "")) \
            or len(key) != 24:
        refuse(ws, 400)
        return
    if headers.get("sec-websocket-version", "") != "13":  # section 4.4
        refuse(ws, 426, "Sec-WebSocket-Version: 13\r\n")
        return
    proto = ""
    offered = headers.get("sec-websocket-protocol", None)
    if offered is not None:
        # MQTT 3.1.1 section 6 names "mqtt"; mosquitto takes "mqttv3.1" too
        names = [t.strip() for t in offered.split(",")]
        proto = "mqtt" if "mqtt" in names else "mqttv3.1" if "mqttv3.1" in names else ""
        if not proto:
            refuse(ws, 400)
            return
    try:
        from hashlib import sha1
        digest = sha1(key.encode() + _GUID).digest()
    except ImportError:  # a MicroPython without SHA-1
        from ports.sha1 import sha1 as sha1_bytes
        digest = sha1_bytes(key.encode() + _GUID)
    accept = binascii.b2a_base64(digest).decode().strip()
    ws.resp = ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s\r\n"
               % (accept, "Sec-WebSocket-Protocol: %s\r\n" % proto if proto else "")).encode()
    ws.phase = _OPEN


def _static(ws: "Ws", target: str, head: bool) -> None:
    """A file of http_dir: nothing outside it (no '..'), no directory listing."""
    path = target.split("?")[0].split("#")[0]
    if not ws.http_dir or not path.startswith("/") or ".." in path or "\\" in path \
            or "\0" in path:
        refuse(ws, 404)
        return
    if path.endswith("/"):
        path += "index.html"
    full = ws.http_dir.rstrip("/") + path
    try:
        st = os.stat(full)
        if st[0] & _S_IFDIR:
            raise OSError(21)
        f = None if head else open(full, "rb")
    except OSError:
        refuse(ws, 404)
        return
    dot = path.rfind(".")
    ctype = _TYPES.get(path[dot + 1:].lower(), "application/octet-stream") \
        if dot > path.rfind("/") else "application/octet-stream"
    ws.resp = ("HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
               "Connection: close\r\n\r\n" % (ctype, st[6])).encode()
    if f is not None:
        ws.file = f
        ws.fbuf = bytearray(_PIECE)
    ws.phase = _HTTP
