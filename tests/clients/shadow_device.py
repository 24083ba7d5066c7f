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

from awsiot import ServiceStreamOptions, iotshadow

from sdk_device import TIMEOUT, add_args, client_options, close, connect, open_stream, rejected

parser = argparse.ArgumentParser()
add_args(parser)
args = parser.parse_args()
thing = args.thing

conn = connect(args)
shadow = iotshadow.IotShadowClientV2(conn, client_options())
stream, deltas = open_stream(
    shadow.create_shadow_delta_updated_stream,
    iotshadow.ShadowDeltaUpdatedSubscriptionRequest(thing_name=thing),
    ServiceStreamOptions,
)

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
close(conn, args)
print(json.dumps(out))
