"""What the Device SDK clients in this folder share: the mTLS arguments,
a connection as AWS's samples make it (MQTT 3.1.1, or the SDK's MQTT 5
client with --mqtt5), the request-response client options, and reading a
rejected request's modeled error."""

import queue
import sys

from awscrt import mqtt_request_response
from awsiot import V2ServiceException, mqtt5_client_builder, mqtt_connection_builder

TIMEOUT = 20


def add_args(parser):
    """--endpoint, --port, --ca, --cert, --key, --thing, --mqtt5."""
    parser.add_argument("--endpoint", default="localhost")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--thing", required=True)
    parser.add_argument("--mqtt5", action="store_true")


def connect(args):
    """The connected client, as thing --thing (its client id)."""
    tls = dict(
        endpoint=args.endpoint,
        port=args.port,
        cert_filepath=args.cert,
        pri_key_filepath=args.key,
        ca_filepath=args.ca,
        client_id=args.thing,
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
        return conn
    conn = mqtt_connection_builder.mtls_from_path(**tls, clean_session=True, keep_alive_secs=30)
    conn.connect().result(TIMEOUT)
    return conn


def close(conn, args):
    if args.mqtt5:
        conn.stop()
    else:
        conn.disconnect().result(TIMEOUT)


def client_options():
    """Room for a service client's requests and two streams."""
    return mqtt_request_response.ClientOptions(
        max_request_response_subscriptions=6,
        max_streaming_subscriptions=2,
        operation_timeout_in_seconds=TIMEOUT,
    )


def open_stream(create, request, options_type):
    """Open a service stream; wait until it is subscribed. The stream and
    the queue its events arrive on."""
    events = queue.Queue()
    subscribed = queue.Queue()
    stream = create(
        request,
        options_type(
            incoming_event_listener=lambda event: events.put(event),
            subscription_status_listener=lambda status: subscribed.put(status.type),
        ),
    )
    stream.open()
    status = subscribed.get(timeout=TIMEOUT)
    if status != mqtt_request_response.SubscriptionStatusEventType.SUBSCRIPTION_ESTABLISHED:
        sys.exit(f"stream not subscribed: {status}")
    return stream, events


def rejected(future):
    """The modeled error of a rejected request as {code, message} (and
    `state` when the service sent the execution state), or None when the
    request was accepted."""
    try:
        future.result(TIMEOUT)
    except V2ServiceException as e:
        err = e.modeled_error
        if err is None:
            raise
        out = {"code": err.code, "message": err.message}
        state = getattr(err, "execution_state", None)
        if state is not None:
            out["state"] = {"status": state.status, "version": state.version_number}
        return out
    return None
