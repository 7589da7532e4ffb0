"""broker.config: the per-listener TLS options (mosquitto's certfile, keyfile, cafile,
require_certificate) and our connect_timeout. Plain asserts: runs on both runtimes.

Only the parsing is checked here; loading the files into a TLS context is the ports' job
(tests/integration/test_tls.py)."""
from broker.config import parse
from harness import Hub
from ports.readfile import read_file
from support import error_of, remove_file, temp_path, write_file

CERT = temp_path("tls-cert.pem")
KEY = temp_path("tls-key.pem")
CA = temp_path("tls-ca.pem")
MISSING = temp_path("tls-missing.pem")


def setup_files() -> None:
    for path in (CERT, KEY, CA):
        write_file(path, "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    remove_file(MISSING)


def test_tls_options_belong_to_the_listener_before_them() -> None:
    setup_files()
    cfg = parse("listener 1883\nlistener 8883\ncertfile %s\nkeyfile %s\n"
                "listener 8884 127.0.0.1\ncertfile %s\nkeyfile %s\ncafile %s\n"
                "require_certificate true\n" % (CERT, KEY, CERT, KEY, CA), read=read_file)
    plain, tls, mutual = cfg.listeners
    assert (plain.certfile, plain.keyfile, plain.cafile) == ("", "", "")
    assert plain.require_certificate is False
    assert (tls.certfile, tls.keyfile, tls.cafile) == (CERT, KEY, "")
    assert tls.require_certificate is False
    assert (mutual.certfile, mutual.keyfile, mutual.cafile) == (CERT, KEY, CA)
    assert mutual.require_certificate is True


def test_require_certificate_false_and_cafile_alone_are_accepted() -> None:
    setup_files()
    cfg = parse("listener 8883\ncertfile %s\nkeyfile %s\ncafile %s\nrequire_certificate false\n"
                % (CERT, KEY, CA), read=read_file)
    assert cfg.listeners[0].cafile == CA
    assert cfg.listeners[0].require_certificate is False


def test_tls_option_outside_a_listener_names_the_line() -> None:
    setup_files()
    for name, value in (("certfile", CERT), ("keyfile", KEY), ("cafile", CA),
                        ("require_certificate", "true")):
        msg = error_of("allow_anonymous true\n%s %s\nlistener 8883\n" % (name, value))
        assert msg.startswith("broker.conf:2: %s applies to a listener" % name), msg
    # `port` makes a listener too, but mosquitto's default-listener rules are not followed for
    # TLS here: the option must come after a `listener` line.
    msg = error_of("port 1884\ncertfile %s\n" % CERT)
    assert msg.startswith("broker.conf:2: certfile applies to a listener"), msg


def test_unreadable_tls_file_names_the_line_and_the_file() -> None:
    setup_files()
    for name in ("certfile", "keyfile", "cafile"):
        msg = error_of("listener 8883\n%s %s\n" % (name, MISSING))
        assert msg.startswith("broker.conf:2: %s: cannot read %s: " % (name, MISSING)), msg


def test_incomplete_tls_listener_names_the_listener_line() -> None:
    setup_files()
    cases = (
        ("listener 1883\nlistener 8883\ncertfile %s\n" % CERT, "certfile and keyfile"),
        ("listener 1883\nlistener 8883\nkeyfile %s\n" % KEY, "certfile and keyfile"),
        ("listener 1883\nlistener 8883\ncafile %s\n" % CA, "certfile and keyfile"),
        ("listener 1883\nlistener 8883\ncertfile %s\nkeyfile %s\nrequire_certificate true\n"
         % (CERT, KEY), "needs a cafile"),
    )
    for text, why in cases:
        msg = error_of(text)
        assert msg.startswith("broker.conf:2: listener 0.0.0.0:8883: "), msg
        assert why in msg, msg


def test_bad_require_certificate_value() -> None:
    msg = error_of("listener 8883\nrequire_certificate yes\n")
    assert msg == "broker.conf:2: require_certificate: expected true or false, got 'yes'", msg


def test_tls_on_a_unix_socket_listener_is_refused() -> None:
    setup_files()
    msg = error_of("listener 0 /tmp/broker-tls-test.sock\ncertfile %s\n" % CERT)
    assert msg.startswith("broker.conf:2: certfile on a unix socket listener is not supported"), msg


def test_tls_file_options_take_one_value() -> None:
    msg = error_of("listener 8883\ncertfile\n")
    assert msg == "broker.conf:2: 'certfile' needs a value", msg


def test_connect_timeout_option() -> None:
    assert parse("").connect_timeout == 10
    assert parse("connect_timeout 3\n").connect_timeout == 3
    assert parse("connect_timeout 65535\n").connect_timeout == 65535
    for bad in ("0", "-1", "65536"):
        msg = error_of("connect_timeout %s\n" % bad)
        assert msg == "broker.conf:1: connect_timeout: %s is out of range (1..65535)" % bad, msg
    assert error_of("connect_timeout soon\n") == (
        "broker.conf:1: connect_timeout: expected an integer, got 'soon'")


def test_connect_timeout_drops_a_silent_socket_after_the_configured_time() -> None:
    hub = Hub("connect_timeout 3\n")
    c = hub.client()
    hub.advance(2900)
    assert not c.closed
    hub.advance(600)
    assert c.closed
    assert c.recv() == []
    assert "sent no CONNECT in time" in hub.log_text()


def test_certificate_name_options() -> None:
    import sys
    setup_files()
    text = ("listener 8883\ncertfile %s\nkeyfile %s\ncafile %s\nrequire_certificate true\n"
            "use_identity_as_username true\nuse_subject_as_username true\n" % (CERT, KEY, CA))
    if sys.implementation.name == "micropython":
        msg = error_of(text)
        assert msg == ("broker.conf:6: use_identity_as_username is not supported on MicroPython"
                       " (its tls module does not give the client's certificate)"), msg
    else:
        lst = parse(text, "broker.conf", read=read_file).listeners[0]
        assert lst.use_identity_as_username is True
        assert lst.use_subject_as_username is True
    # false is what a board does anyway
    lst = parse("listener 8883\nuse_identity_as_username false\n").listeners[0]
    assert lst.use_identity_as_username is False
    msg = error_of("use_subject_as_username false\n")
    assert msg == ("broker.conf:1: use_subject_as_username applies to a listener: put it after"
                   " a 'listener PORT' line"), msg
    msg = error_of("listener 0 /tmp/broker-tls-test.sock\nuse_identity_as_username false\n")
    assert msg == ("broker.conf:2: use_identity_as_username on a unix socket listener is not"
                   " supported by this broker (yet)"), msg
    msg = error_of("listener 8883\nuse_identity_as_username yes\n")
    assert msg.startswith("broker.conf:2: use_identity_as_username"), msg
