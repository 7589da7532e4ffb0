// MQTT.js (npm `mqtt`) against a broker, for tests/integration/test_mqttjs.py.
//
//     node tests/integration/mqttjs/client.mjs SPEC
//
// SPEC is JSON: {"port": N, "subscribe": [[filter, {qos, properties}], ...],
// "publish": [[topic, payload, {qos, retain, properties}], ...], "expect": N}. Two clients
// speaking MQTT 5.0 (protocolVersion 5): a subscriber connects and subscribes, then a publisher
// connects and publishes each message in turn (the next once the last is acknowledged, or sent
// at QoS 0); once the subscriber has `expect` messages, both disconnect and one JSON object is
// printed on stdout:
//     {"granted": [...], "acks": [...], "received": [...]}
// acks: the Reason Code of each PUBLISH's PUBACK (null at QoS 0); received: each message as
// {topic, payload, qos, retain, properties, userPropertyOrder} (Buffers as hex strings). Any
// error, or 10 s without the messages, exits with status 1 and the reason on stderr.
import mqtt from "mqtt";

const spec = JSON.parse(process.argv[2]);
const url = "mqtt://127.0.0.1:" + spec.port;
const options = { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000 };
const result = { granted: [], acks: [], received: [] };

function plain(value) {
  if (Buffer.isBuffer(value)) return value.toString("hex");
  if (Array.isArray(value)) return value.map(plain);
  if (value !== null && typeof value === "object") {
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = plain(v);
    return out;
  }
  return value;
}

function fail(why) {
  process.stderr.write("client.mjs: " + why + "\n");
  process.exit(1);
}

setTimeout(() => fail("timed out with " + result.received.length + " of " + spec.expect
                      + " messages"), 10000).unref();

function connected(id) {
  return new Promise((resolve) => {
    const client = mqtt.connect(url, { ...options, clientId: id });
    client.on("error", (e) => fail(id + ": " + e.message));
    client.once("connect", () => resolve(client));
  });
}

const sub = await connected("mqttjs-sub");
let done;
const all = new Promise((resolve) => { done = resolve; });
sub.on("message", (topic, payload, packet) => {
  const props = packet.properties ?? {};
  result.received.push({
    topic, payload: payload.toString(), qos: packet.qos, retain: packet.retain,
    properties: plain(props), userPropertyOrder: Object.keys(props.userProperties ?? {}),
  });
  if (result.received.length === spec.expect) done();
});
for (const [filter, opts] of spec.subscribe) {
  result.granted.push(...(await sub.subscribeAsync(filter, opts)).map((g) => g.qos));
}
const pub = await connected("mqttjs-pub");
let ack = null;
pub.on("packetreceive", (packet) => {
  if (packet.cmd === "puback") ack = packet.reasonCode ?? 0;
});
for (const [topic, payload, opts] of spec.publish) {
  ack = null;
  await pub.publishAsync(topic, payload, opts);
  result.acks.push(ack);
}
await all;
await pub.endAsync();
await sub.endAsync();
process.stdout.write(JSON.stringify(result) + "\n");
