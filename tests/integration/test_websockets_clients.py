"""MQTT over WebSockets with clients no one here wrote: MQTT.js (npm `mqtt`, run by Node) over
ws://, paho-mqtt with transport="websockets" over ws:// and, where the port has TLS, wss://, and
Debian's chromium, headless, loading a page from http_dir that connects with MQTT.js's browser
bundle. Every expectation holds for mosquitto 2.0.11 too (BROKER_UNDER_TEST=mosquitto)."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import re
import tempfile
import time
import urllib.request
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from ws_raw import WsConn, frame, upgrade_request, ws_lines

# MQTT.js speaks v5 too: the v5 code (V5_HEAP) and the framer, both compiled from source on the
# 64-bit port, need 240K here (224K runs out at the v5 CONNECT); 256K keeps a margin
pytestmark = [pytest.mark.integration, pytest.mark.heap("256K")]

MQTTJS = Path(__file__).resolve().parent / "mqttjs"


def require_mqttjs(peer):
    node = peer("node")
    if not (MQTTJS / "node_modules" / "mqtt").is_dir():
        reason = "MQTT.js is missing: make test installs it (npm ci --prefix tests/integration/mqttjs)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " (a missing peer is a failure under CI)", pytrace=False)
        pytest.skip(reason)
    return node


@pytest.mark.parametrize("version", [4, 5])
def test_mqttjs_over_ws(broker_factory, broker_kind, peer, version):
    node = require_mqttjs(peer)
    broker = broker_factory(ws_lines(broker_kind))
    url = "ws://127.0.0.1:%d/mqtt" % broker.port
    proc = subprocess.run([node, str(MQTTJS / "ws_roundtrip.mjs"), url, str(version)],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, "%s\nbroker log:\n%s" % (proc.stderr, broker.log())
    got = sorted(json.loads(proc.stdout)["received"])
    assert got == [["ws/js/big", 3000, 1], ["ws/js/small", 2, 0]]


def paho_roundtrip(port, tls_ca=None):
    """A paho client over WebSockets subscribes, then publishes to itself; what it received."""
    got = queue.Queue()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="paho-ws", transport="websockets",
                    reconnect_on_failure=False)
    c.ws_set_options(path="/mqtt")
    if tls_ca is not None:
        c.tls_set(ca_certs=tls_ca)
    c.on_message = lambda client, userdata, msg: got.put((msg.topic, bytes(msg.payload),
                                                          msg.qos))
    subscribed = queue.Queue()
    c.on_subscribe = lambda *a: subscribed.put(True)
    c.connect("localhost" if tls_ca else "127.0.0.1", port, keepalive=30)
    c.loop_start()
    try:
        c.subscribe("ws/paho/#", qos=1)
        subscribed.get(timeout=5)
        c.publish("ws/paho/a", b"x" * 3000, qos=1)  # a 16-bit frame length each way
        c.publish("ws/paho/b", b"small", qos=0)
        return sorted([got.get(timeout=10), got.get(timeout=10)])
    finally:
        c.disconnect()
        c.loop_stop()


def test_paho_over_ws(broker_factory, broker_kind):
    broker = broker_factory(ws_lines(broker_kind))
    assert paho_roundtrip(broker.port) == [("ws/paho/a", b"x" * 3000, 1),
                                           ("ws/paho/b", b"small", 0)]


# mosquitto 2.0.11 here fails to start the same listener ("Unable to create websockets
# listener"); the 32-bit port has no TLS (WASM32_LACKS)
@pytest.mark.kinds("cpython", "micropython", "wasm32")
def test_paho_over_wss(broker_factory, broker_kind, pki):
    # the listener's TLS options make it wss://, as in mosquitto
    broker = broker_factory(ws_lines(broker_kind, "certfile " + pki.path("server.crt"),
                                     "keyfile " + pki.path("server.key")))
    assert paho_roundtrip(broker.port, pki.path("ca.crt"))[1] == ("ws/paho/b", b"small", 0)


PAGE = """<!doctype html>
<html><head><script src="mqtt.min.js"></script></head>
<body><pre id="out">waiting</pre>
<script>
const out = document.getElementById("out");
const client = mqtt.connect("ws://" + location.host + "/mqtt",
                            {clientId: "browser", reconnectPeriod: 0});
client.on("error", (e) => { out.textContent = "error: " + e.message; });
client.on("message", (topic, payload) => {
  out.textContent = "round trip: " + topic + " " + payload.toString();
  client.end();
});
client.on("connect", () => {
  client.subscribe("dash/#", {qos: 1}, () => client.publish("dash/temp", "21.5", {qos: 1}));
});
</script></body></html>
"""


def chromium(peer):
    for name in ("chromium", "chromium-browser"):
        if shutil.which(name):
            return shutil.which(name)
    reason = "chromium not found: apt-get install chromium"
    if os.environ.get("CI") == "true":
        pytest.fail(reason + " (a missing peer is a failure under CI)", pytrace=False)
    pytest.skip(reason)


def page_text(browser, url, profile, timeout=20.0):
    """The text of the page's #out once it says "round trip", read through chromium's DevTools
    protocol (a WebSocket, spoken with ws_raw's frames: text frames of JSON), or the last text
    read when the time is up."""
    proc = subprocess.Popen([browser, "--headless", "--no-sandbox", "--disable-gpu",
                             "--remote-debugging-port=0", "--user-data-dir=" + profile, url],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        port = None
        deadline = time.monotonic() + timeout
        while port is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            m = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
            if m:
                port = int(m.group(1))
        assert port is not None, "chromium did not say where DevTools listens"
        text = ""
        while time.monotonic() < deadline:
            pages = json.loads(urllib.request.urlopen(
                "http://127.0.0.1:%d/json/list" % port, timeout=5).read())
            pages = [p for p in pages if p.get("type") == "page"]
            if not pages:
                time.sleep(0.2)
                continue
            path = pages[0]["webSocketDebuggerUrl"].split(str(port), 1)[1]
            c = WsConn(type("Addr", (), {"host": "127.0.0.1", "port": port})())
            try:
                c.send(upgrade_request(protocol=None, path=path))
                assert " 101 " in c.http_response()[0]
                while time.monotonic() < deadline:
                    c.send(frame(1, json.dumps({"id": 1, "method": "Runtime.evaluate", "params": {
                        "expression": "document.getElementById('out').textContent"}}).encode()))
                    reply = json.loads(c.frame()[2])
                    text = reply.get("result", {}).get("result", {}).get("value", "")
                    if "round trip" in text or "error" in text:
                        return text
                    time.sleep(0.2)
            finally:
                c.close()
        return text
    finally:
        proc.kill()
        proc.wait()


def test_browser_dashboard_page_from_http_dir(broker_factory, broker_kind, peer):
    # a board's own dashboard: the page and the MQTT connection from one port
    browser = chromium(peer)
    bundle = MQTTJS / "node_modules" / "mqtt" / "dist" / "mqtt.min.js"
    require_mqttjs(peer)
    root = Path(tempfile.mkdtemp(prefix="ws-page-"))
    profile = tempfile.mkdtemp(prefix="ws-chromium-")
    try:
        root.chmod(0o755)  # mosquitto, started as root, reads it as the user mosquitto
        (root / "index.html").write_text(PAGE)
        shutil.copy(bundle, root / "mqtt.min.js")
        (root / "mqtt.min.js").chmod(0o644)
        broker = broker_factory(ws_lines(broker_kind, "http_dir %s" % root))
        text = page_text(browser, "http://127.0.0.1:%d/" % broker.port, profile)
        assert text == "round trip: dash/temp 21.5", "%r\nbroker log:\n%s" % (text, broker.log())
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(profile, ignore_errors=True)
