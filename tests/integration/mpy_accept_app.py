"""The MicroPython port's accept path with a TLS context that fails once, for
test_mpy_accept.py: `micropython tests/integration/mpy_accept_app.py CONFIG`, from the
repository's root.

mbedTLS reports what goes wrong in wrap_socket() (out of its own memory, say) as
OSError(code, text). The stand-in context raises that for the first client, and hands the
next ones over as they are. The broker's log lines go to stderr."""
import sys

sys.path.insert(0, ".")
from broker import cli  # noqa: E402
from ports.micropython.server import Server  # noqa: E402


class FailingOnce:
    failed = False

    def wrap_socket(self, sock, server_side=False, do_handshake_on_connect=True):
        if not self.failed:
            self.failed = True
            raise OSError(-0x7F00, "SSL - Memory allocation failed")
        return sock


def read(path):
    with open(path, "rb") as f:
        return f.read()


server = Server(cli.parse_args(["-c", sys.argv[1]], read),
                lambda level, msg: sys.stderr.write(msg + "\n"))
server.bind()
for lsock in server.listeners:
    server.tls[lsock] = FailingOnce()
sys.stderr.write("listening on %s\n" % server.addresses[0])
while True:
    server.step(100)
