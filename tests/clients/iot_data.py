"""A backend using boto3's `iot-data` client against Weir's HTTP API, with a
paho-mqtt device console watching what it causes.

Usage: iot_data.py --endpoint http://127.0.0.1:<port> --mqtt-port <port>
                   --key <access key id> --secret <secret access key>

Runs the shadow operations (update, get, conflicts and bad documents,
named shadows, list, delete), publishes over HTTP (QoS 1 to a live
subscriber and to an offline persistent session, retained, telemetry for
the rules), and checks that a wrong secret and an unsigned request are
refused. Prints one JSON object with what it saw and exits 0; the test
asserts on it.
"""

import argparse
import json
import time
import urllib.error
import urllib.request

import boto3
import paho.mqtt.client as mqtt
from botocore.exceptions import ClientError

ap = argparse.ArgumentParser()
ap.add_argument("--endpoint", required=True)
ap.add_argument("--mqtt-port", type=int, required=True)
ap.add_argument("--key", required=True)
ap.add_argument("--secret", required=True)
args = ap.parse_args()


def client(secret):
    return boto3.client(
        "iot-data",
        endpoint_url=args.endpoint,
        region_name="us-east-1",
        aws_access_key_id=args.key,
        aws_secret_access_key=secret,
    )


iot = client(args.secret)
out = {}


def error(call):
    """The AWS error code, message and HTTP status a call raised."""
    try:
        call()
    except ClientError as e:
        return {
            "code": e.response["Error"]["Code"],
            "message": e.response["Error"].get("Message", ""),
            "status": e.response["ResponseMetadata"]["HTTPStatusCode"],
        }
    return None


def doc(response):
    return json.loads(response["payload"].read())


received = []


def on_message(_c, _u, msg):
    try:
        payload = json.loads(msg.payload)
    except ValueError:
        payload = msg.payload.decode(errors="replace")
    received.append({"topic": msg.topic, "payload": payload, "retain": bool(msg.retain), "qos": msg.qos})


def mqtt_client(client_id, clean=True):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean)
    c.on_message = on_message
    c.connect("127.0.0.1", args.mqtt_port, keepalive=30)
    c.loop_start()
    return c


def subscribe(c, *topics):
    for t in topics:
        result, _ = c.subscribe(t, qos=1)
        assert result == mqtt.MQTT_ERR_SUCCESS, result


# A persistent session that subscribes, then goes offline.
offline = mqtt_client("lamp-offline", clean=False)
subscribe(offline, "cmd/lamp-offline")
time.sleep(0.3)
offline.disconnect()
offline.loop_stop()

console = mqtt_client("console")
subscribe(console, "$aws/things/lamp/shadow/update/delta", "$aws/things/lamp/shadow/update/documents", "cmd/lamp",
          "echo/#")
time.sleep(0.5)

# Shadows.
out["update"] = doc(iot.update_thing_shadow(
    thingName="lamp", payload=json.dumps({"state": {"desired": {"color": "red", "power": {"on": True}}}})))
out["get"] = doc(iot.get_thing_shadow(thingName="lamp"))
out["update_with_token"] = doc(iot.update_thing_shadow(
    thingName="lamp", payload=json.dumps({"state": {"reported": {"color": "blue"}}, "clientToken": "backend-1"})))
out["conflict"] = error(lambda: iot.update_thing_shadow(
    thingName="lamp", payload=json.dumps({"state": {"desired": {"color": "green"}}, "version": 99})))
out["invalid_json"] = error(lambda: iot.update_thing_shadow(thingName="lamp", payload=b"{nope"))
out["missing_state"] = error(lambda: iot.update_thing_shadow(thingName="lamp", payload=b'{"clientToken":"t-1"}'))
out["no_shadow"] = error(lambda: iot.get_thing_shadow(thingName="ghost"))
out["bad_thing"] = error(lambda: iot.get_thing_shadow(thingName="bad!name"))

out["named_update"] = doc(iot.update_thing_shadow(
    thingName="lamp", shadowName="config", payload=json.dumps({"state": {"reported": {"interval": 10}}})))
out["named_get"] = doc(iot.get_thing_shadow(thingName="lamp", shadowName="config"))
iot.update_thing_shadow(thingName="lamp", shadowName="schedule", payload=json.dumps({"state": {"desired": {"at": "07:00"}}}))
# Listed from the store, which the running instance writes every checkpoint interval.
deadline = time.time() + 10
while True:
    listed = iot.list_named_shadows_for_thing(thingName="lamp")
    if sorted(listed.get("results", [])) == ["config", "schedule"] or time.time() > deadline:
        break
    time.sleep(0.2)
out["named_list"] = listed["results"]
out["named_page"] = iot.list_named_shadows_for_thing(thingName="lamp", pageSize=1)
out["named_delete"] = doc(iot.delete_thing_shadow(thingName="lamp", shadowName="config"))
out["named_after_delete"] = error(lambda: iot.get_thing_shadow(thingName="lamp", shadowName="config"))

# Publish.
iot.publish(topic="cmd/lamp", qos=1, payload=json.dumps({"do": "blink"}).encode())
iot.publish(topic="cmd/lamp-offline", qos=1, payload=json.dumps({"do": "wake"}).encode())
iot.publish(topic="cfg/lamp", qos=1, retain=True, payload=json.dumps({"interval": 30}).encode())
iot.publish(topic="dt/thermostat/http-dev/telemetry", qos=1,
            payload=json.dumps({"ts": int(time.time() * 1000), "temperature": 22.5, "humidity": 41.0}).encode())
# Retained messages, read back as AWS's API serves them.
got = iot.get_retained_message(topic="cfg/lamp")
out["retained_get"] = {"topic": got["topic"], "payload": json.loads(got["payload"]), "qos": got["qos"],
                       "recent": abs(got["lastModifiedTime"] - time.time() * 1000) < 60_000}
out["retained_list"] = [t["topic"] for t in iot.list_retained_messages()["retainedTopics"]]
out["retained_missing"] = error(lambda: iot.get_retained_message(topic="cfg/none"))

# Readings a backend publishes for devices, then their desired state: each
# device's shadow holds both (its readings and its shadow requests meet in
# one plugin instance whoever publishes them, on any number of workers).
for i in range(8):
    child = f"gw-child-{i}"
    iot.publish(topic=f"dt/thermostat/{child}/telemetry", qos=1,
                payload=json.dumps({"ts": int(time.time() * 1000), "temperature": 20.0 + i, "humidity": 40.0}).encode())
    iot.update_thing_shadow(thingName=child, payload=json.dumps({"state": {"desired": {"setpoint": 18}}}))
out["children"] = [doc(iot.get_thing_shadow(thingName=f"gw-child-{i}")) for i in range(8)]
# MQTT 5 properties, as boto3 passes them, reach the rules (an echo rule).
iot.publish(topic="props/lamp", qos=1, payload=b'{"on":true}', contentType="application/json",
            responseTopic="reply/lamp", correlationData="AQL/", payloadFormatIndicator="UTF8_DATA",
            userProperties=json.dumps([{"site": "lab"}, {"site": "roof"}]))
out["publish_wildcard"] = error(lambda: iot.publish(topic="cmd/+", payload=b"x"))
out["publish_answer_topic"] = error(lambda: iot.publish(topic="$aws/things/lamp/shadow/update/accepted", payload=b"{}"))

# Refused callers.
out["bad_secret"] = error(lambda: client("not-the-secret").get_thing_shadow(thingName="lamp"))
try:
    urllib.request.urlopen(f"{args.endpoint}/things/lamp/shadow", timeout=10)
    out["unsigned"] = {"status": 200}
except urllib.error.HTTPError as e:
    out["unsigned"] = {"status": e.code, "type": e.headers.get("x-amzn-ErrorType")}

# The offline session comes back: its QoS 1 message waited for it.
back = mqtt_client("lamp-offline", clean=False)
late = mqtt_client("late-subscriber")
subscribe(late, "cfg/lamp")

deadline = time.time() + 10
want = {"cmd/lamp", "cmd/lamp-offline", "cfg/lamp", "$aws/things/lamp/shadow/update/delta", "echo/lamp"}
while time.time() < deadline and not want <= {m["topic"] for m in received}:
    time.sleep(0.1)
out["mqtt"] = received
for c in (console, back, late):
    c.disconnect()
    c.loop_stop()
print(json.dumps(out))
