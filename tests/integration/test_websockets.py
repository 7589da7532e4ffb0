"""MQTT over WebSockets on the wire: the opening handshake, the framing rules, http_dir. Each
test cites RFC 6455's section, or the MQTT section 6 rule ([MQTT-6.0.0-n]) it checks.

Every expectation holds for mosquitto 2.0.11 too (BROKER_UNDER_TEST=mosquitto), but where its
libwebsockets is more lenient than the RFC (it takes unmasked and text frames, and waits for the
body of any frame): those tests are own_broker, and say what mosquitto does.
"""

from __future__ import annotations

import shutil
import socket
import struct
import tempfile
import time
from pathlib import Path

import pytest

from conftest import closed_at_teardown
from ws_raw import (ACCEPT, CONNACK, CONNECT, KEY, PINGREQ, PINGRESP, WAIT, WsConn,
                    accept_value, binary, frame, upgrade_request, ws_lines)

# compiled from source, the framer needs more than the suite's 144K on the 64-bit port
pytestmark = [pytest.mark.integration, pytest.mark.heap("192K")]


@pytest.fixture
def ws_broker(broker_factory, broker_kind):
    def make(*extra):
        return broker_factory(ws_lines(broker_kind, *extra))
    return make


@pytest.fixture
def www():
    """An http_dir: outside pytest's own directories, which mosquitto, started as root, could
    not read (it runs as the user mosquitto)."""
    d = Path(tempfile.mkdtemp(prefix="ws-www-"))
    d.chmod(0o755)
    (d / "www").mkdir(mode=0o755)
    yield d / "www"
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def conns():
    yield from closed_at_teardown(WsConn)


def connected(conns, broker):
    c = conns(broker)
    c.open()
    c.send(binary(CONNECT))
    assert c.mqtt(4) == CONNACK
    return c


def test_handshake_accept_and_subprotocol_section_4_2_2(ws_broker, conns):
    # section 4.2.2: Sec-WebSocket-Accept is base64(SHA-1(key + GUID)), the example of 1.3;
    # [MQTT-6.0.0-4] the subprotocol selected is "mqtt"
    broker = ws_broker()
    c = conns(broker)
    headers = c.open("mqtt")
    assert headers["sec-websocket-accept"] == ACCEPT == accept_value(KEY)
    assert headers["upgrade"].lower() == "websocket"
    assert headers["sec-websocket-protocol"] == "mqtt"
    # mosquitto takes MQTT 3.1's name as well, and picks "mqtt" among several
    assert conns(broker).open("mqttv3.1")["sec-websocket-protocol"] == "mqttv3.1"
    assert conns(broker).open("chat, mqtt")["sec-websocket-protocol"] == "mqtt"


@pytest.mark.parametrize("request_bytes", [
    upgrade_request(key=None),
    upgrade_request(protocol="chat"),
], ids=["no-key", "unknown-subprotocol"])
def test_bad_upgrade_is_refused_section_4_2_1(ws_broker, conns, broker_kind, request_bytes):
    # section 4.2.1: a handshake the server cannot accept gets an HTTP error such as 400 (this
    # broker); mosquitto closes without an answer. Never a 101.
    c = conns(ws_broker())
    c.send(request_bytes)
    status, _, _ = c.http_response()
    if broker_kind.reference:
        assert status is None or " 101 " not in status
    else:
        assert status == "HTTP/1.1 400 Bad Request"


@pytest.mark.own_broker  # mosquitto's libwebsockets also takes the drafts' version 8
def test_unknown_version_gets_426_section_4_4(ws_broker, conns):
    c = conns(ws_broker())
    c.send(upgrade_request(version="8"))
    status, headers, _ = c.http_response()
    assert status == "HTTP/1.1 426 Upgrade Required"
    assert headers["sec-websocket-version"] == "13"


def test_packets_split_across_frames_and_continuations_section_5_4(ws_broker, conns):
    # section 5.4: a message in fragments (FIN clear, then continuation frames); and MQTT
    # packets split across messages, as over TCP [MQTT-6.0.0-2]
    broker = ws_broker()
    c = conns(broker)
    c.open()
    c.send(binary(CONNECT[:3], fin=False))
    c.send(frame(0, CONNECT[3:9], fin=False))
    c.send(frame(0, CONNECT[9:]))
    assert c.mqtt(4) == CONNACK
    c.send(binary(PINGREQ[:1]) + binary(PINGREQ[1:]))
    assert c.mqtt(2) == PINGRESP


def test_several_packets_in_one_frame_MQTT_6_0_0_3(ws_broker, conns):
    # [MQTT-6.0.0-3]: a frame may hold several MQTT Control Packets
    c = conns(ws_broker())
    c.open()
    c.send(binary(CONNECT + PINGREQ + PINGREQ))
    assert c.mqtt(8) == CONNACK + PINGRESP + PINGRESP


def test_ping_gets_pong_with_its_data_even_inside_a_message_section_5_5_2(ws_broker, conns):
    # section 5.5.2/5.5.3: a Pong with the Ping's Application data; 5.4: control frames may be
    # injected in the middle of a fragmented message
    c = conns(ws_broker())
    c.open()
    c.send(binary(CONNECT[:5], fin=False) + frame(9, b"are you there") + frame(0, CONNECT[5:]))
    assert c.frame() == (10, True, b"are you there")
    assert c.mqtt(4) == CONNACK
    c.send(frame(10, b"unsolicited"))  # section 5.5.3: an unsolicited Pong needs no answer
    c.send(binary(PINGREQ))
    assert c.mqtt(2) == PINGRESP


def test_close_is_echoed_and_the_will_published_section_5_5_1(ws_broker, conns):
    # section 5.5.1: the answer to a Close echoes its status code; then the TCP connection is
    # closed. No DISCONNECT came: the will is published [MQTT-3.1.2-8].
    broker = ws_broker()
    watcher = connected(conns, broker)
    watcher.send(binary(bytes.fromhex("82090001000477732f7700")))  # SUBSCRIBE ws/w
    assert watcher.mqtt(5) == bytes.fromhex("9003000100")
    c = conns(broker)
    c.open()
    # CONNECT with will "ws/w" = "gone" (QoS 0), client id "w2"
    c.send(binary(bytes.fromhex("101a00044d5154540406003c0002773200047773"
                                "2f7700") + b"\x04gone"))
    assert c.mqtt(4) == CONNACK
    c.send(frame(8, struct.pack(">H", 1000) + b"bye"))
    assert c.closed_with() == 1000
    assert watcher.mqtt(12) == bytes.fromhex("300a00047773") + b"/wgone"


@pytest.mark.own_broker  # mosquitto 2.0.11 (libwebsockets) takes unmasked frames
def test_unmasked_client_frame_closes_with_1002_section_5_1(ws_broker, conns):
    c = conns(ws_broker())
    c.open()
    c.send(binary(CONNECT, mask=False))
    assert c.closed_with() == 1002


@pytest.mark.own_broker  # mosquitto 2.0.11 takes text frames as if they were binary
def test_text_frame_closes_with_1003_MQTT_6_0_0_1(ws_broker, conns):
    # [MQTT-6.0.0-1]: other data frames than binary make the recipient close the connection;
    # 1003 is section 7.4.1's code for data of a type the endpoint cannot accept
    c = conns(ws_broker())
    c.open()
    c.send(frame(1, CONNECT))
    assert c.closed_with() == 1003


@pytest.mark.own_broker  # mosquitto 2.0.11 waits for the body of a frame of any length
def test_frame_past_max_packet_size_refused_before_its_body_section_7_4_1(ws_broker, conns):
    # 1009: a message too big to process; the header alone is enough to refuse it, so the
    # broker never waits for (or holds) its body. The board profile's max_packet_size is 4096.
    c = conns(ws_broker("max_packet_size 4096"))
    c.open()
    c.send(binary(CONNECT))
    assert c.mqtt(4) == CONNACK
    c.send(frame(2, b"", length=1 << 40)[:10] + b"\x01\x02\x03\x04")
    assert c.closed_with() == 1009


@pytest.mark.parametrize("bad", [
    frame(3, b"x"),                  # section 5.2: opcodes 3-7 are reserved
    frame(11, b"x"),                 # and 0xB-0xF
    binary(PINGREQ, rsv=0x40),       # RSV1 without a negotiated extension
    frame(9, b"x" * 126),            # section 5.5: control frames carry 125 bytes at most
    frame(9, b"x", fin=False),       # and are never fragmented
    frame(0, PINGREQ),               # a continuation frame with nothing to continue
], ids=["opcode-3", "opcode-11", "rsv1", "long-ping", "fragmented-ping", "lone-continuation"])
def test_protocol_errors_close_the_connection_section_7_1_7(ws_broker, conns, broker_kind, bad):
    # section 7.1.7: _Fail the WebSocket Connection_, with 1002 (protocol error) where a Close
    # frame is sent; mosquitto sends one for some of these, and closes without one for others
    c = connected(conns, ws_broker())
    c.send(bad)
    if broker_kind.reference:
        try:
            c.closed_with(2.0)
        except (EOFError, AssertionError):
            pass
        return
    assert c.closed_with() == 1002


def test_http_dir_serves_files_only_inside_it(ws_broker, conns, www, broker_kind):
    # mosquitto's http_dir: plain GET of a file; nothing outside DIR, no listing, 404 for the
    # rest
    (www / "sub").mkdir()
    (www / "index.html").write_text("<h1>dashboard</h1>\n")
    page = bytes(range(256)) * 20  # several of the broker's pieces
    (www / "sub" / "app.js").write_bytes(page)
    (www.parent / "secret.txt").write_text("no")
    broker = ws_broker("http_dir %s" % www)

    def get(path):
        c = conns(broker)
        c.send(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
        return c.http_response()

    status, headers, body = get("/index.html")
    assert status.split(" ")[1] == "200" and body == b"<h1>dashboard</h1>\n"
    status, headers, body = get("/sub/app.js")
    assert status.split(" ")[1] == "200" and body == page
    if not broker_kind.reference:  # mosquitto sends no Content-Type
        assert headers["content-type"] == "text/javascript"
    assert get("/")[2] == b"<h1>dashboard</h1>\n"
    for path in ("/../secret.txt", "/sub/../../secret.txt", "/missing.html"):
        assert get(path)[0].split(" ")[1] == "404", path
    # a directory is never listed: this broker says 404, mosquitto redirects to "/sub/"
    assert get("/sub")[0].split(" ")[1] == ("302" if broker_kind.reference else "404")


@pytest.mark.own_broker  # mosquitto closes a request past its limit without an answer
def test_request_past_the_limit_gets_400(ws_broker, conns, www):
    c = conns(ws_broker("http_dir %s" % www))
    c.send(b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n\r\n")
    assert c.http_response()[0] == "HTTP/1.1 400 Bad Request"


@pytest.mark.own_broker  # this broker's connect_timeout option
def test_half_sent_request_dropped_at_the_connect_timeout(ws_broker, conns, www):
    # a client that never finishes its request holds nothing up: another is served meanwhile,
    # and the first is closed at connect_timeout
    (www / "a.txt").write_text("a")
    broker = ws_broker("http_dir %s" % www, "connect_timeout 1")
    slow = conns(broker)
    slow.send(b"GET /a.txt HTTP/1.1\r\nHost")
    fast = conns(broker)
    fast.send(b"GET /a.txt HTTP/1.1\r\n\r\n")
    assert fast.http_response()[2] == b"a"
    slow.wait_eof(5.0)


@pytest.mark.own_broker  # this broker's connect_timeout option
def test_a_download_longer_than_the_connect_timeout_completes(ws_broker, www):
    # Each piece sent starts the connect timeout again: what it cuts is a client that stopped
    # reading, not one reading a large file at its own pace. 8 MB read at 3 MB/s take over
    # 2 s, of which the kernel's buffers (about 2.5 MB here) hide less than one.
    body = bytes(range(256)) * (32 * 1024)
    (www / "big.js").write_bytes(body)
    broker = ws_broker("http_dir %s" % www, "connect_timeout 1")
    sock = socket.create_connection((broker.host, broker.port), timeout=WAIT)
    try:
        sock.sendall(b"GET /big.js HTTP/1.1\r\nHost: board\r\n\r\n")
        got = bytearray()
        start = time.monotonic()
        while True:
            data = sock.recv(65536)
            if not data:
                break
            got += data
            time.sleep(max(0.0, start + len(got) / 3e6 - time.monotonic()))
    finally:
        sock.close()
    assert bytes(got).split(b"\r\n\r\n", 1)[1] == body, "%d of %d bytes" % (len(got), len(body))
