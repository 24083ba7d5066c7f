"""Publish one message with MQTT 5 properties, as a paho-mqtt device would.

Usage: mqtt5_properties.py <port> <client-id> <topic>

Connects with MQTT 5, publishes `{"t": 1}` with QoS 1 and a content type,
payload format indicator, response topic, correlation data and user
properties (a repeated key included), waits for the PUBACK and prints its
reason code as JSON.
"""

import json
import sys

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

port, client_id, topic = int(sys.argv[1]), sys.argv[2], sys.argv[3]
client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
client.connect("127.0.0.1", port, keepalive=30)
client.loop_start()
props = Properties(PacketTypes.PUBLISH)
props.ContentType = "application/json"
props.PayloadFormatIndicator = 1
props.ResponseTopic = f"reply/{client_id}"
props.CorrelationData = b"\x01\x02\xff"
props.UserProperty = [("site", "lab"), ("rack", "7"), ("site", "roof")]
info = client.publish(topic, json.dumps({"t": 1}), qos=1, properties=props)
info.wait_for_publish(timeout=10)
client.disconnect()
client.loop_stop()
print(json.dumps({"published": info.is_published()}))
