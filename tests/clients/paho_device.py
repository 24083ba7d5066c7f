"""A device and an operator console written with paho-mqtt, as a user would.

Usage: paho_device.py <port> <device-id> [tcp|websockets]

With `websockets` both clients use paho's WebSocket transport
(ws://127.0.0.1:<port>/mqtt), as a browser dashboard does.

Subscribes (QoS 1) to the device's alerts, its lifecycle events and its
telemetry, connects the device, publishes 25 quiet readings and one spike
with QoS 1 (each must be acknowledged with a PUBACK), then prints one JSON
line per message received (topic, payload, the QoS it was delivered at)
and exits 0. Exits 1 when no zscore alert arrives within 20 s.
"""

import json
import sys
import time

import paho.mqtt.client as mqtt

port = int(sys.argv[1])
device = sys.argv[2]
transport = sys.argv[3] if len(sys.argv) > 3 else "tcp"
received = []


def client(client_id):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, transport=transport)
    if transport == "websockets":
        c.ws_set_options(path="/mqtt")
    return c


def on_message(_client, _userdata, msg):
    received.append({"topic": msg.topic, "payload": json.loads(msg.payload), "qos": msg.qos})


console = client(f"console-{device}")
console.on_message = on_message
console.connect("127.0.0.1", port, keepalive=30)
console.loop_start()
topic = f"dt/thermostat/{device}/telemetry"
for topic in (f"weir/alerts/{device}", f"$aws/events/presence/+/{device}", topic):
    result, _mid = console.subscribe(topic, qos=1)
    assert result == mqtt.MQTT_ERR_SUCCESS, result
time.sleep(0.5)

dev = client(device)
dev.connect("127.0.0.1", port, keepalive=30)
dev.loop_start()


def publish(reading):
    info = dev.publish(topic, json.dumps(reading), qos=1)
    info.wait_for_publish(timeout=10)
    assert info.is_published(), f"no PUBACK for {reading}"


for i in range(25):
    publish({"ts": int(time.time() * 1000), "temperature": 20.0 + 0.1 * ((i * 7) % 5 - 2), "humidity": 40.0})
# Readings of one device are processed in order, so the spike meets a warm baseline.
publish({"ts": int(time.time() * 1000), "temperature": 35.0, "humidity": 40.0})

deadline = time.time() + 20
while time.time() < deadline and not any(m["payload"].get("kind") == "zscore" for m in received):
    time.sleep(0.1)
dev.disconnect()
dev.loop_stop()
time.sleep(0.5)
console.disconnect()
console.loop_stop()
for m in received:
    print(json.dumps(m))
sys.exit(0 if any(m["payload"].get("kind") == "zscore" for m in received) else 1)
