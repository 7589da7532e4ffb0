"""TLS for the MicroPython port (the tls module, mbedTLS): listeners, and bridges to a remote
broker. Imported only when a listener has a certfile or a bridge a bridge_cafile.

MicroPython's mbedTLS is built without PEM parsing, so the PEM files a mosquitto user has are
decoded to DER here. Its load_cert_chain takes one certificate, so only the first certificate of
certfile is served (no intermediate certificates); cafile may hold several.

Accepted sockets are wrapped without a handshake: it runs inside the first non-blocking reads,
which return None until it is done, so a silent peer costs the loop nothing and the engine's
connect timeout drops it.
"""
import binascii

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, List
    from broker.bridge_settings import BridgeSettings
    from broker.settings import Listener


class TlsError(ValueError):
    """args[0]: one line naming the listener and the file."""


def _blocks(path: str, kind: str) -> "List[bytes]":
    """The DER blocks of a PEM file whose label ends with kind ("CERTIFICATE", "PRIVATE KEY"),
    or the whole file when it is DER already."""
    with open(path, "rb") as f:
        data = f.read()
    if b"-----BEGIN " not in data:
        return [data]
    found = []  # type: List[bytes]
    pos = 0
    while True:
        start = data.find(b"-----BEGIN ", pos)
        if start < 0:
            return found
        label_end = data.find(b"-----", start + 11)
        end = data.find(b"-----END ", label_end)
        if label_end < 0 or end < 0:
            raise ValueError("%s: a PEM block is not terminated" % path)
        label = data[start + 11:label_end]
        body = data[label_end + 5:end]
        # PKCS#8 says so in the label, the older formats in a Proc-Type header
        if label.startswith(b"ENCRYPTED") or b"Proc-Type:" in body:
            raise ValueError("%s: the key is encrypted (a passphrase is not supported)" % path)
        if label.endswith(kind.encode()):
            found.append(binascii.a2b_base64(body))
        pos = end + 9


def _first(path: str, kind: str) -> bytes:
    der = _blocks(path, kind)
    if not der:
        raise ValueError("%s: no %s in the file" % (path, kind))
    return der[0]


def _tls_module(where: str, what: str) -> "Any":
    try:
        import tls  # type: ignore[import-not-found]  # MicroPython's own module
    except ImportError:
        raise TlsError("%s: this MicroPython has no TLS (no tls module), %s" % (where, what))
    return tls


def _load_cas(ctx: "Any", path: str) -> None:
    cas = _blocks(path, "CERTIFICATE")
    if not cas:
        raise ValueError("%s: no CERTIFICATE in the file" % path)
    for der in cas:
        ctx.load_verify_locations(der)


def client_context(b: "BridgeSettings") -> "Any":
    """The tls.SSLContext of one bridge: the remote broker's certificate must be signed by a
    CA in bridge_cafile and name the host in `address`; with a bridge_certfile the bridge shows
    it as its client certificate. TlsError names the connection and the file.

    bridge_insecure true is refused: this mbedTLS checks the host name whenever it checks the
    certificate (CERT_REQUIRED needs server_hostname, and a verify_callback can add failures,
    not clear one), so skipping the name would mean skipping the whole check."""
    where = "connection %s" % b.name
    tls = _tls_module(where, "bridge_cafile %s cannot be used" % b.cafile)
    if b.insecure:
        raise TlsError("%s: bridge_insecure true is not available on MicroPython (its TLS checks"
                       " the host name whenever it checks the certificate): put a name the"
                       " certificate has in 'address'" % where)
    ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    step = "bridge_cafile %s" % b.cafile
    try:
        _load_cas(ctx, str(b.cafile))
        if b.certfile:
            step = "bridge_certfile %s with bridge_keyfile %s" % (b.certfile, b.keyfile)
            ctx.load_cert_chain(_first(b.certfile, "CERTIFICATE"),
                                _first(str(b.keyfile), "PRIVATE KEY"))
    except (OSError, ValueError) as e:
        raise TlsError("%s: cannot use %s: %s" % (where, step, e))
    ctx.verify_mode = tls.CERT_REQUIRED
    return ctx


def server_context(lst: "Listener") -> "Any":
    """The tls.SSLContext for one listener's certfile, keyfile, cafile and
    require_certificate; TlsError when the runtime or a file cannot serve it."""
    where = "listener %s:%d" % (lst.host or "0.0.0.0", lst.port)
    tls = _tls_module(where, "certfile %s cannot be served" % lst.certfile)
    ctx = tls.SSLContext(tls.PROTOCOL_TLS_SERVER)
    step = "certfile %s with keyfile %s" % (lst.certfile, lst.keyfile)
    try:
        ctx.load_cert_chain(_first(lst.certfile, "CERTIFICATE"),
                            _first(lst.keyfile, "PRIVATE KEY"))
        if lst.cafile:
            step = "cafile %s" % lst.cafile
            _load_cas(ctx, lst.cafile)
    except (OSError, ValueError) as e:
        raise TlsError("%s: cannot use %s: %s" % (where, step, e))
    ctx.verify_mode = tls.CERT_REQUIRED if lst.require_certificate else tls.CERT_NONE
    return ctx
