"""Fleet provisioning by claim with the AWS IoT Device SDK v2 for Python
(awsiotsdk), as AWS's own fleet-provisioning sample does it, pointed at Weir.

Usage: fleet_provision.py --port P --ca ca.pem --claim-cert c.pem --claim-key k.pem
                          --template NAME --param K=V ... --out DIR [--csr csr.pem]

1. connects over mTLS with the shared claim certificate;
2. calls CreateKeysAndCertificate (or CreateCertificateFromCsr with --csr)
   on $aws/certificates/create[-from-csr]/json;
3. calls RegisterThing on $aws/provisioning-templates/NAME/provision/json;
4. reconnects with the new certificate, the thing name as client id, and
   publishes 5 telemetry readings (QoS 1) on dt/<type>/<thing>/telemetry.

Prints one JSON line: {"thingName", "certificateId", "deviceConfiguration",
"published"}. Exits non-zero on any rejection or timeout.
"""

import argparse
import json
import os
import sys
import threading
import time
from concurrent.futures import Future

from awscrt import mqtt
from awsiot import iotidentity, mqtt_connection_builder

TIMEOUT = 20

parser = argparse.ArgumentParser()
parser.add_argument("--endpoint", default="localhost")
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--ca", required=True)
parser.add_argument("--claim-cert", required=True)
parser.add_argument("--claim-key", required=True)
parser.add_argument("--template", required=True)
parser.add_argument("--param", action="append", default=[])
parser.add_argument("--out", required=True)
parser.add_argument("--csr", help="PEM CSR; the private key stays with the caller")
parser.add_argument("--key", help="private key matching --csr (for the reconnect)")
parser.add_argument("--thing-type", default="thermostat")
parser.add_argument("--client-id", default=f"claim-{os.getpid()}")
args = parser.parse_args()
params = dict(p.split("=", 1) for p in args.param)


def connect(cert, key, client_id):
    conn = mqtt_connection_builder.mtls_from_path(
        endpoint=args.endpoint,
        port=args.port,
        cert_filepath=cert,
        pri_key_filepath=key,
        ca_filepath=args.ca,
        client_id=client_id,
        clean_session=True,
        keep_alive_secs=30,
    )
    conn.connect().result(TIMEOUT)
    return conn


def fail(what, err):
    print(json.dumps({"error": what, "detail": str(err)}))
    sys.exit(2)


claim = connect(args.claim_cert, args.claim_key, args.client_id)
identity = iotidentity.IotIdentityClient(claim)

# Subscribe to the answers first, as the SDK sample does.
created: Future = Future()
registered: Future = Future()


def on_created(response):
    created.set_result(response)


def on_created_rejected(err):
    created.set_exception(RuntimeError(f"create rejected: {err.status_code} {err.error_code} {err.error_message}"))


def on_registered(response):
    registered.set_result(response)


def on_registered_rejected(err):
    registered.set_exception(RuntimeError(f"register rejected: {err.status_code} {err.error_code} {err.error_message}"))


if args.csr:
    sub = iotidentity.CreateCertificateFromCsrSubscriptionRequest()
    f1, _ = identity.subscribe_to_create_certificate_from_csr_accepted(sub, mqtt.QoS.AT_LEAST_ONCE, on_created)
    f2, _ = identity.subscribe_to_create_certificate_from_csr_rejected(sub, mqtt.QoS.AT_LEAST_ONCE, on_created_rejected)
else:
    sub = iotidentity.CreateKeysAndCertificateSubscriptionRequest()
    f1, _ = identity.subscribe_to_create_keys_and_certificate_accepted(sub, mqtt.QoS.AT_LEAST_ONCE, on_created)
    f2, _ = identity.subscribe_to_create_keys_and_certificate_rejected(sub, mqtt.QoS.AT_LEAST_ONCE, on_created_rejected)
f1.result(TIMEOUT)
f2.result(TIMEOUT)
reg_sub = iotidentity.RegisterThingSubscriptionRequest(template_name=args.template)
f3, _ = identity.subscribe_to_register_thing_accepted(reg_sub, mqtt.QoS.AT_LEAST_ONCE, on_registered)
f4, _ = identity.subscribe_to_register_thing_rejected(reg_sub, mqtt.QoS.AT_LEAST_ONCE, on_registered_rejected)
f3.result(TIMEOUT)
f4.result(TIMEOUT)

if args.csr:
    with open(args.csr) as f:
        csr = f.read()
    identity.publish_create_certificate_from_csr(
        iotidentity.CreateCertificateFromCsrRequest(certificate_signing_request=csr), mqtt.QoS.AT_LEAST_ONCE
    ).result(TIMEOUT)
else:
    identity.publish_create_keys_and_certificate(
        iotidentity.CreateKeysAndCertificateRequest(), mqtt.QoS.AT_LEAST_ONCE
    ).result(TIMEOUT)
try:
    cert = created.result(TIMEOUT)
except Exception as e:  # noqa: BLE001 - report any failure as JSON
    fail("create", e)

os.makedirs(args.out, exist_ok=True)
cert_path = os.path.join(args.out, "device.cert.pem")
with open(cert_path, "w") as f:
    f.write(cert.certificate_pem)
if args.csr:
    key_path = args.key
else:
    key_path = os.path.join(args.out, "device.key.pem")
    with open(key_path, "w") as f:
        f.write(cert.private_key)
    os.chmod(key_path, 0o600)

identity.publish_register_thing(
    iotidentity.RegisterThingRequest(
        template_name=args.template,
        certificate_ownership_token=cert.certificate_ownership_token,
        parameters=params,
    ),
    mqtt.QoS.AT_LEAST_ONCE,
).result(TIMEOUT)
try:
    thing = registered.result(TIMEOUT)
except Exception as e:  # noqa: BLE001
    fail("register", e)
claim.disconnect().result(TIMEOUT)

# The device now has its own identity: reconnect as the thing.
device = connect(cert_path, key_path, thing.thing_name)
topic = f"dt/{args.thing_type}/{thing.thing_name}/telemetry"
published = 0
for i in range(5):
    reading = {"ts": int(time.time() * 1000), "temperature": 21.0 + 0.1 * i, "humidity": 40.0}
    fut, _ = device.publish(topic, json.dumps(reading), mqtt.QoS.AT_LEAST_ONCE)
    fut.result(TIMEOUT)
    published += 1
device.disconnect().result(TIMEOUT)

print(json.dumps({
    "thingName": thing.thing_name,
    "certificateId": cert.certificate_id,
    "deviceConfiguration": thing.device_configuration,
    "published": published,
}))
