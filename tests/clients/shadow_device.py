"""A device using the Device Shadow service through the AWS IoT Device SDK v2
for Python (awsiotsdk), with its request-response shadow client
(IotShadowClientV2, as AWS's current shadow sample uses it), pointed at Weir.

Usage: shadow_device.py --port P --ca ca.pem --cert c.pem --key k.pem --thing T [--mqtt5]

With --mqtt5 the SDK's MQTT 5 client carries the requests (AWS's
shadow_mqtt5 sample); without, its MQTT 3.1.1 connection.

Over mTLS as thing T, it:
1. gets the shadow before there is one (rejected, 404);
2. sets desired state, as an application would, and waits for the delta
   on its delta stream;
3. reports that state, then gets the whole shadow;
4. updates with a stale version (rejected, 409);
5. updates and gets a named shadow;
6. deletes the classic shadow and gets it again (rejected, 404).

Prints one JSON line with what each step answered. Exits non-zero when a
step times out.
"""

import argparse
import json
import queue
import sys

from awscrt import mqtt_request_response
from awsiot import (
    ServiceStreamOptions,
    V2ServiceException,
    iotshadow,
    mqtt5_client_builder,
    mqtt_connection_builder,
)

TIMEOUT = 20

parser = argparse.ArgumentParser()
parser.add_argument("--endpoint", default="localhost")
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--ca", required=True)
parser.add_argument("--cert", required=True)
parser.add_argument("--key", required=True)
parser.add_argument("--thing", required=True)
parser.add_argument("--mqtt5", action="store_true")
args = parser.parse_args()
thing = args.thing


def rejected(future):
    """The modeled error of a rejected request, as {code, message}."""
    try:
        future.result(TIMEOUT)
    except V2ServiceException as e:
        err = e.modeled_error
        if err is None:
            raise
        return {"code": err.code, "message": err.message}
    return None


# The same mTLS settings for either client, as AWS's samples pass them.
tls = dict(
    endpoint=args.endpoint,
    port=args.port,
    cert_filepath=args.cert,
    pri_key_filepath=args.key,
    ca_filepath=args.ca,
    client_id=thing,
)
if args.mqtt5:
    connected = queue.Queue()
    conn = mqtt5_client_builder.mtls_from_path(
        **tls,
        on_lifecycle_connection_success=lambda data: connected.put(True),
        on_lifecycle_connection_failure=lambda data: connected.put(data.exception),
    )
    conn.start()
    up = connected.get(timeout=TIMEOUT)
    if up is not True:
        sys.exit(f"MQTT 5 connection failed: {up}")
else:
    conn = mqtt_connection_builder.mtls_from_path(**tls, clean_session=True, keep_alive_secs=30)
    conn.connect().result(TIMEOUT)
shadow = iotshadow.IotShadowClientV2(
    conn,
    mqtt_request_response.ClientOptions(
        max_request_response_subscriptions=6,
        max_streaming_subscriptions=2,
        operation_timeout_in_seconds=TIMEOUT,
    ),
)

deltas = queue.Queue()
subscribed = queue.Queue()
stream = shadow.create_shadow_delta_updated_stream(
    iotshadow.ShadowDeltaUpdatedSubscriptionRequest(thing_name=thing),
    ServiceStreamOptions(
        incoming_event_listener=lambda event: deltas.put(event),
        subscription_status_listener=lambda status: subscribed.put(status.type),
    ),
)
stream.open()
status = subscribed.get(timeout=TIMEOUT)
if status != mqtt_request_response.SubscriptionStatusEventType.SUBSCRIPTION_ESTABLISHED:
    sys.exit(f"delta stream not subscribed: {status}")

out = {}
out["get_before"] = rejected(shadow.get_shadow(iotshadow.GetShadowRequest(thing_name=thing)))

desired = {"color": "red", "brightness": 70}
r = shadow.update_shadow(
    iotshadow.UpdateShadowRequest(
        thing_name=thing, state=iotshadow.ShadowState(desired=desired)
    )
).result(TIMEOUT)
out["update_desired"] = {"version": r.version, "desired": r.state.desired}

delta = deltas.get(timeout=TIMEOUT)
out["delta"] = {"version": delta.version, "state": delta.state}

r = shadow.update_shadow(
    iotshadow.UpdateShadowRequest(
        thing_name=thing, state=iotshadow.ShadowState(reported=desired)
    )
).result(TIMEOUT)
out["update_reported"] = {"version": r.version, "reported": r.state.reported}

r = shadow.get_shadow(iotshadow.GetShadowRequest(thing_name=thing)).result(TIMEOUT)
out["get"] = {
    "version": r.version,
    "desired": r.state.desired,
    "reported": r.state.reported,
    "delta": r.state.delta,
}

out["stale_version"] = rejected(
    shadow.update_shadow(
        iotshadow.UpdateShadowRequest(
            thing_name=thing,
            version=1,
            state=iotshadow.ShadowState(desired={"color": "blue"}),
        )
    )
)

r = shadow.update_named_shadow(
    iotshadow.UpdateNamedShadowRequest(
        thing_name=thing,
        shadow_name="config",
        state=iotshadow.ShadowState(desired={"interval": 30}),
    )
).result(TIMEOUT)
out["named_update_version"] = r.version
r = shadow.get_named_shadow(
    iotshadow.GetNamedShadowRequest(thing_name=thing, shadow_name="config")
).result(TIMEOUT)
out["named_get"] = {"version": r.version, "desired": r.state.desired}

r = shadow.delete_shadow(iotshadow.DeleteShadowRequest(thing_name=thing)).result(TIMEOUT)
out["delete_version"] = r.version
out["get_after_delete"] = rejected(
    shadow.get_shadow(iotshadow.GetShadowRequest(thing_name=thing))
)

del stream
if args.mqtt5:
    conn.stop()
else:
    conn.disconnect().result(TIMEOUT)
print(json.dumps(out))
