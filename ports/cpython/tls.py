"""TLS for the CPython port (the ssl module): listeners, and bridges to a remote broker.
Imported only when a listener has a certfile or a bridge a bridge_cafile.

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

    from broker.bridge_settings import BridgeSettings

    from _typeshed import ReadableBuffer, WriteableBuffer
    Rdns = tuple[tuple[tuple[str, str], ...], ...]  # a subject: (name, value) pairs per RDN

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


# Failures are worded with the options' names: prefix "" for a listener's, "bridge_" for a
# bridge's.
def _load_chain(ctx: ssl.SSLContext, where: str, prefix: str, certfile: str,
                keyfile: "Optional[str]") -> None:
    try:
        ctx.load_cert_chain(certfile, keyfile, _no_passphrase)
    except ConfigError as e:
        raise ConfigError("%s: %skeyfile %s: %s" % (where, prefix, keyfile, e))
    except (ssl.SSLError, OSError) as e:
        raise ConfigError("%s: cannot use %scertfile %s with %skeyfile %s: %s"
                          % (where, prefix, certfile, prefix, keyfile, _reason(e)))


def _load_cas(ctx: ssl.SSLContext, where: str, prefix: str, cafile: "Optional[str]") -> None:
    try:
        ctx.load_verify_locations(cafile=cafile)
    except (ssl.SSLError, OSError) as e:
        raise ConfigError("%s: cannot use %scafile %s: %s" % (where, prefix, cafile, _reason(e)))


def server_context(lst: Listener) -> ssl.SSLContext:
    """The SSLContext for one listener's certfile, keyfile, cafile and require_certificate.
    A file that cannot be used raises ConfigError naming the listener and the file."""
    where = "listener %s:%d" % (lst.host or "0.0.0.0", lst.port)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.sslsocket_class = _NonBlockingTls
    _load_chain(ctx, where, "", lst.certfile, lst.keyfile)
    if lst.cafile:
        _load_cas(ctx, where, "", lst.cafile)
    ctx.verify_mode = ssl.CERT_REQUIRED if lst.require_certificate else ssl.CERT_NONE
    return ctx


def client_context(b: "BridgeSettings") -> ssl.SSLContext:
    """The SSLContext of one bridge: the remote broker's certificate must be signed by a CA in
    bridge_cafile and, unless bridge_insecure, name the host the bridge connects to; with a
    bridge_certfile the bridge shows it as its client certificate. ConfigError names the
    connection and the file."""
    where = "connection %s" % b.name
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.sslsocket_class = _NonBlockingTls
    _load_cas(ctx, where, "bridge_", b.cafile)
    if b.certfile:
        _load_chain(ctx, where, "bridge_", b.certfile, b.keyfile)
    # the chain is checked either way, as mosquitto does with bridge_insecure
    ctx.check_hostname = not b.insecure
    return ctx


class HandshakeFailed(Exception):
    """str(e): why, in one line."""


def handshake(sock: ssl.SSLSocket) -> str:
    """One step of a client handshake on a non-blocking socket: "read" or "write" when it
    waits for the socket, "" once it is done; HandshakeFailed when it cannot succeed."""
    try:
        sock.do_handshake()
    except ssl.SSLWantReadError:
        return "read"
    except ssl.SSLWantWriteError:
        return "write"
    except ssl.SSLCertVerificationError as e:
        raise HandshakeFailed("certificate verify failed: %s" % e.verify_message)
    except ssl.SSLError as e:
        raise HandshakeFailed(e.reason or str(e))
    except OSError as e:
        raise HandshakeFailed(_reason(e))
    return ""


def _reason(e: Exception) -> str:
    return getattr(e, "strerror", None) or str(e)


# OpenSSL's short names of the attributes a subject commonly has (the ssl module gives long
# names), as mosquitto's RFC 2253 subject writes them; any other keeps its long name.
_SHORT = {
    "commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU",
    "countryName": "C", "stateOrProvinceName": "ST", "localityName": "L",
    "streetAddress": "street", "domainComponent": "DC", "userId": "UID", "surname": "SN",
    "givenName": "GN", "serialNumber": "serialNumber", "title": "title",
    "emailAddress": "emailAddress",
}


def certificate_name(sock: ssl.SSLSocket, subject: bool) -> str:
    """The username a client's certificate gives, as mosquitto 2.0 takes it: its commonName
    (use_identity_as_username), or with subject its whole subject in RFC 2253's form, last
    attribute first (use_subject_as_username: "CN=dev 1,OU=Prod,O=Acme\\, Inc,C=GB"); "" when
    the client sent no certificate, or one with no commonName or a NUL in it."""
    cert = sock.getpeercert()
    if not cert:
        return ""
    # typeshed gives every field of the dict one type
    rdns = cert["subject"]  # type: Rdns  # type: ignore[assignment]
    if subject:
        parts = []
        for rdn in reversed(rdns):
            parts.append("+".join(_SHORT.get(k, k) + "=" + _escape(v) for k, v in rdn))
        return ",".join(parts)
    for rdn in rdns:
        for k, v in rdn:
            if k == "commonName":
                return "" if "\0" in v else v
    return ""


def _escape(value: str) -> str:
    """An attribute's value as OpenSSL's RFC 2253 printer writes it: the specials after a
    backslash, a leading '#' or space and a trailing space too, and each byte of a character
    beyond ASCII as a backslash and two hex digits."""
    out = []
    last = len(value) - 1
    for i, ch in enumerate(value):
        if ord(ch) > 0x7E or ord(ch) < 0x20:
            out.append("".join("\\%02X" % x for x in ch.encode()))
        elif ch in ',+"\\<>;' or (i == 0 and ch in "# ") or (i == last and ch == " "):
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)

