"""TLS listeners for the CPython port (the ssl module), imported only when a listener has a
certfile.

Accepted sockets are wrapped without a handshake; OpenSSL runs it inside the first reads and
writes, so a slow or silent peer costs the epoll loop nothing and the engine's connect timeout
drops it like any socket that sends no CONNECT. The socket class below turns the ssl module's
"want read / want write" into BlockingIOError, which the port already treats as "try later".
"""
import errno
import ssl

from broker.config import ConfigError
from broker.settings import Listener

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

    from _typeshed import ReadableBuffer, WriteableBuffer

_WANT = (ssl.SSLWantReadError, ssl.SSLWantWriteError)


class _NonBlockingTls(ssl.SSLSocket):
    def recv_into(self, buffer: "WriteableBuffer", nbytes: "Optional[int]" = None,
                  flags: int = 0) -> int:
        try:
            n = super().recv_into(buffer, nbytes, flags)
            # epoll sees the kernel's bytes, not a record OpenSSL decrypted but did not hand
            # out; the port's 64 KB buffer holds a whole record (16 KB at most), so this is a
            # safety net, not a path the port's reads take.
            size = len(memoryview(buffer))
            while n and n < size and self.pending():
                n += super().recv_into(memoryview(buffer)[n:], 0, flags)
        except _WANT:
            raise BlockingIOError(errno.EAGAIN, "TLS handshake or record in progress")
        return n

    def send(self, data: "ReadableBuffer", flags: int = 0) -> int:
        try:
            return super().send(data, flags)
        except _WANT:
            raise BlockingIOError(errno.EAGAIN, "TLS handshake or record in progress")


def _no_passphrase() -> str:
    # Without this callback OpenSSL would prompt on the terminal for an encrypted key.
    raise ConfigError("the key is encrypted (a passphrase is not supported)")


def server_context(lst: Listener) -> ssl.SSLContext:
    """The SSLContext for one listener's certfile, keyfile, cafile and require_certificate.
    A file that cannot be used raises ConfigError naming the listener and the file."""
    where = "listener %s:%d" % (lst.host or "0.0.0.0", lst.port)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.sslsocket_class = _NonBlockingTls
    try:
        ctx.load_cert_chain(lst.certfile, lst.keyfile, _no_passphrase)
    except ConfigError as e:
        raise ConfigError("%s: keyfile %s: %s" % (where, lst.keyfile, e))
    except (ssl.SSLError, OSError) as e:
        raise ConfigError("%s: cannot use certfile %s with keyfile %s: %s"
                          % (where, lst.certfile, lst.keyfile, _reason(e)))
    if lst.cafile:
        try:
            ctx.load_verify_locations(cafile=lst.cafile)
        except (ssl.SSLError, OSError) as e:
            raise ConfigError("%s: cannot use cafile %s: %s" % (where, lst.cafile, _reason(e)))
    ctx.verify_mode = ssl.CERT_REQUIRED if lst.require_certificate else ssl.CERT_NONE
    return ctx


def _reason(e: Exception) -> str:
    return getattr(e, "strerror", None) or str(e)

