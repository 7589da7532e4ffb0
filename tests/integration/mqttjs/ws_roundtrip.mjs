// MQTT.js over ws:// (or wss://) against a broker, for tests/integration/test_websockets_clients.py.
//
//     node tests/integration/mqttjs/ws_roundtrip.mjs URL PROTOCOL_VERSION
//
// One client subscribes to ws/js/#, publishes a QoS 1 message larger than one TCP segment and a
// QoS 0 one to itself, and prints what came back as JSON: {"received": [[topic, length, qos],
// ...]}. Any error, or 10 s without both, exits with status 1 and the reason on stderr.
import mqtt from "mqtt";

const [url, version] = process.argv.slice(2);
function fail(why) {
  process.stderr.write("ws_roundtrip.mjs: " + why + "\n");
  process.exit(1);
}
setTimeout(() => fail("timed out"), 10000).unref();
const client = mqtt.connect(url, {
  protocolVersion: Number(version), reconnectPeriod: 0, connectTimeout: 5000,
  clientId: "mqttjs-ws", rejectUnauthorized: false,
});
client.on("error", (e) => fail(e.message));
const received = [];
client.on("message", (topic, payload, packet) => {
  received.push([topic, payload.length, packet.qos]);
  if (received.length === 2) {
    client.end(() => {
      process.stdout.write(JSON.stringify({ received }) + "\n");
      process.exit(0);
    });
  }
});
client.on("connect", async () => {
  await client.subscribeAsync("ws/js/#", { qos: 1 });
  await client.publishAsync("ws/js/big", Buffer.alloc(3000, 0x61), { qos: 1 });
  await client.publishAsync("ws/js/small", "hi", { qos: 0 });
});
