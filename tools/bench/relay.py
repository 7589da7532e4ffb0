"""The least an MQTT broker in a CPython process can do per message, for tools/bench/floor.py: one
epoll loop that answers CONNECT, SUBSCRIBE and PINGREQ and copies each PUBLISH to every client
that subscribed, whatever the topic. No sessions, no checks, no limits: a yardstick, not a broker.

    .venv/bin/python tools/bench/relay.py PORT

floor.py also runs it compiled by mypyc (build/bench/relay-mypyc), the least a compiled loop does.
"""
import select
import signal
import socket
import sys
from typing import Dict, Set


def serve(port: int) -> None:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as our broker's listener
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
    listener.setblocking(False)
    lfd = listener.fileno()
    poller = select.epoll()
    poller.register(lfd, select.EPOLLIN)
    socks = {}  # type: Dict[int, socket.socket]
    held = {}  # type: Dict[int, bytes]  # the start of a packet that has not all come
    subscribers = set()  # type: Set[int]
    scratch = bytearray(65536)
    while True:
        for fd, _ in poller.poll(0.25):
            if fd == lfd:
                while True:
                    try:
                        sock, _addr = listener.accept()
                    except BlockingIOError:
                        break
                    sock.setblocking(False)
                    socks[sock.fileno()] = sock
                    held[sock.fileno()] = b""
                    poller.register(sock.fileno(), select.EPOLLIN)
                continue
            sock = socks[fd]
            try:
                n = sock.recv_into(scratch)
            except BlockingIOError:
                continue
            except OSError:
                n = 0
            if n == 0:
                poller.unregister(fd)
                sock.close()
                del socks[fd]
                del held[fd]
                subscribers.discard(fd)
                continue
            data = held[fd] + bytes(scratch[:n])
            while len(data) >= 2:
                length = 0
                shift = 0
                i = 1
                while i < len(data):
                    b = data[i]
                    length |= (b & 127) << shift
                    shift += 7
                    i += 1
                    if not b & 128:
                        break
                else:
                    break
                if len(data) < i + length:
                    break
                packet = data[:i + length]
                data = data[i + length:]
                kind = packet[0] >> 4
                if kind == 1:  # CONNECT
                    sock.send(b"\x20\x02\x00\x00")
                elif kind == 8:  # SUBSCRIBE: granted QoS 0, one filter
                    subscribers.add(fd)
                    sock.send(b"\x90\x03" + packet[i:i + 2] + b"\x00")
                elif kind == 3:  # PUBLISH
                    for other in subscribers:
                        socks[other].send(packet)
                elif kind == 12:  # PINGREQ
                    sock.send(b"\xd0\x00")
            held[fd] = data


def _stop(signum: int, frame: object) -> None:
    sys.exit(0)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _stop)
    serve(int(sys.argv[1]))
