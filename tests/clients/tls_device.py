"""A device written with paho-mqtt (MQTT 3.1.1 or 5, plain or mTLS), one
action per run, printing one JSON line with what the broker answered.

Usage: tls_device.py ACTION --port P [--ca ca.pem --cert c.pem --key k.pem]
                     --client-id ID [--v5] [options]

Actions:
  connect      connect and report the CONNACK code (then disconnect)
  publish      publish --count messages to --topic at --qos; report PUBACK
               reason codes and whether the broker closed the connection
  subscribe    subscribe to each --filter at QoS 1; report the SUBACK codes
  session      connect with a persistent session (clean session off, or an
               MQTT 5 session expiry), subscribe to --filter, disconnect
  receive      reconnect the persistent session, report session_present and
               every message received within --wait seconds, then disconnect
  hold         stay connected until the broker closes the connection (or
               --wait seconds pass); report how it ended
"""

import argparse
import json
import ssl
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

p = argparse.ArgumentParser()
p.add_argument("action")
p.add_argument("--host", default="localhost")
p.add_argument("--port", type=int, required=True)
p.add_argument("--ca")
p.add_argument("--cert")
p.add_argument("--key")
p.add_argument("--client-id", required=True)
p.add_argument("--v5", action="store_true")
p.add_argument("--topic")
p.add_argument("--qos", type=int, default=1)
p.add_argument("--count", type=int, default=1)
p.add_argument("--payload", default='{"temperature": 21.5}')
p.add_argument("--filter", action="append", default=[])
p.add_argument("--expiry", type=int, default=300)
p.add_argument("--wait", type=float, default=5.0)
args = p.parse_args()

result = {"action": args.action}
connected = threading.Event()
closed = threading.Event()
messages = []
acks = {}
subacks = []


def rc_value(rc):
    return rc.value if hasattr(rc, "value") else int(rc)


def on_connect(client, _ud, flags, rc, _props=None):
    result["connack"] = rc_value(rc)
    result["session_present"] = bool(flags.session_present if hasattr(flags, "session_present") else flags.get("session present", 0))
    connected.set()


def on_disconnect(_client, _ud, _flags, rc, _props=None):
    result["disconnect_rc"] = rc_value(rc)
    closed.set()


def on_message(_client, _ud, msg):
    messages.append({"topic": msg.topic, "payload": msg.payload.decode(errors="replace"), "dup": bool(msg.dup), "qos": msg.qos})


def on_publish(_client, _ud, mid, rc, _props=None):
    acks[mid] = rc_value(rc)


def on_subscribe(_client, _ud, _mid, codes, _props=None):
    subacks.extend(rc_value(c) for c in codes)


proto = mqtt.MQTTv5 if args.v5 else mqtt.MQTTv311
persistent = args.action in ("session", "receive")
kwargs = {"client_id": args.client_id, "protocol": proto}
if not args.v5:
    kwargs["clean_session"] = not persistent
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, **kwargs)
c.on_connect = on_connect
c.on_disconnect = on_disconnect
c.on_message = on_message
c.on_publish = on_publish
c.on_subscribe = on_subscribe
c.reconnect_delay_set(60, 60)  # never reconnect within a run
if args.cert:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=args.ca)
    ctx.load_cert_chain(args.cert, args.key)
    c.tls_set_context(ctx)

connect_kwargs = {"keepalive": 30}
if args.v5:
    props = Properties(PacketTypes.CONNECT)
    if persistent:
        props.SessionExpiryInterval = args.expiry
    connect_kwargs["properties"] = props
    connect_kwargs["clean_start"] = args.action != "receive"
try:
    c.connect(args.host, args.port, **connect_kwargs)
except Exception as e:  # noqa: BLE001 - TLS refusals land here
    result["error"] = f"{type(e).__name__}: {e}"
    print(json.dumps(result))
    sys.exit(0)
c.loop_start()
if not connected.wait(10) and not closed.is_set():
    result["error"] = "no CONNACK"
if "connack" not in result:
    closed.wait(2)
    c.loop_stop()
    print(json.dumps(result))
    sys.exit(0)

if result.get("connack") == 0:
    if args.action == "publish":
        infos = []
        for i in range(args.count):
            if closed.is_set():
                break
            infos.append(c.publish(args.topic, args.payload, qos=args.qos))
        deadline = time.time() + args.wait
        while time.time() < deadline and not closed.is_set() and (args.qos == 0 or len(acks) < len(infos)):
            time.sleep(0.05)
        if args.qos == 0:
            time.sleep(0.5)
        result["sent"] = len(infos)
        result["acks"] = [acks.get(i.mid) for i in infos]
    elif args.action in ("subscribe", "session"):
        for f in args.filter:
            c.subscribe(f, qos=1)
        deadline = time.time() + args.wait
        while time.time() < deadline and len(subacks) < len(args.filter) and not closed.is_set():
            time.sleep(0.05)
        result["suback"] = subacks
    elif args.action == "receive":
        time.sleep(args.wait)
    elif args.action == "hold":
        closed.wait(args.wait)
result["closed_by_server"] = closed.is_set()
result["messages"] = messages
if not closed.is_set():
    c.disconnect()
    time.sleep(0.2)
c.loop_stop()
print(json.dumps(result))
