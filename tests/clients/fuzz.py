"""Bounded fuzzing of Weir's connection handling, on the plain and the mTLS
listener: random bytes, truncated and corrupted CONNECTs, valid CONNECTs
followed by garbage or truncated packets, and an oversized PUBLISH.

Usage: fuzz.py --port P [--tls-port T --ca ca.pem --cert c.pem --key k.pem]
               [--client-id ID] [--seconds S] [--seed N]

Every case opens its own connection, writes its bytes and reads until the
broker closes (or 0.5 s pass). Prints one JSON line with the case counts and
how many connections the broker closed; exits 0 unless the broker stopped
accepting connections.
"""

import argparse
import json
import random
import socket
import ssl
import struct
import time

p = argparse.ArgumentParser()
p.add_argument("--host", default="127.0.0.1")
p.add_argument("--port", type=int, required=True)
p.add_argument("--tls-port", type=int)
p.add_argument("--ca")
p.add_argument("--cert")
p.add_argument("--key")
p.add_argument("--client-id", default="fuzz")
p.add_argument("--seconds", type=float, default=8.0)
p.add_argument("--seed", type=int, default=7)
args = p.parse_args()
rng = random.Random(args.seed)


def varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mqtt_str(s):
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def connect(client_id, level=4):
    body = mqtt_str("MQTT") + bytes([level, 0x02]) + struct.pack(">H", 30)
    if level == 5:
        body += b"\x00"
    body += mqtt_str(client_id)
    return b"\x10" + varint(len(body)) + body


def publish(topic, payload, qos=0, pkid=1):
    body = mqtt_str(topic) + (struct.pack(">H", pkid) if qos else b"") + payload
    return bytes([0x30 | (qos << 1)]) + varint(len(body)) + body


def case(kind):
    cid = args.client_id
    if kind == "random":
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300)))
    if kind == "truncated_connect":
        c = connect(cid, rng.choice([4, 5]))
        return c[: rng.randint(1, len(c) - 1)]
    if kind == "corrupt_connect":
        c = bytearray(connect(cid, rng.choice([4, 5])))
        for _ in range(rng.randint(1, 4)):
            c[rng.randrange(len(c))] = rng.getrandbits(8)
        return bytes(c)
    if kind == "connect_then_garbage":
        return connect(cid) + bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 200)))
    if kind == "connect_then_truncated_publish":
        pkt = publish(f"dt/fuzz/{cid}/telemetry", b'{"t":1}', qos=1)
        return connect(cid) + pkt[: rng.randint(1, len(pkt) - 1)]
    if kind == "bad_remaining_length":
        return connect(cid) + b"\x30\xff\xff\xff\xff\x01"
    if kind == "oversized_publish":
        return connect(cid) + publish(f"dt/fuzz/{cid}/telemetry", b"x" * (300 * 1024))
    raise ValueError(kind)


KINDS = ["random", "truncated_connect", "corrupt_connect", "connect_then_garbage",
         "connect_then_truncated_publish", "bad_remaining_length", "oversized_publish"]


def open_conn(tls):
    raw = socket.create_connection((args.host, args.tls_port if tls else args.port), timeout=5)
    if not tls:
        return raw
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=args.ca)
    ctx.load_cert_chain(args.cert, args.key)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def run(tls, kind):
    s = open_conn(tls)
    s.settimeout(0.5)
    closed = False
    try:
        s.sendall(case(kind))
        deadline = time.time() + 0.5
        while time.time() < deadline:
            data = s.recv(4096)
            if not data:
                closed = True
                break
    except (socket.timeout, TimeoutError):
        pass
    except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
        closed = True
    finally:
        s.close()
    return closed


counts = {}
closed = 0
listeners = [False] + ([True] if args.tls_port else [])
end = time.time() + args.seconds
i = 0
# Every kind on every listener at least once, then random picks until time is up.
plan = [(tls, k) for tls in listeners for k in KINDS]
while plan or time.time() < end:
    tls, kind = plan.pop(0) if plan else (rng.choice(listeners), rng.choice(KINDS))
    key = ("tls:" if tls else "tcp:") + kind
    counts[key] = counts.get(key, 0) + 1
    if run(tls, kind):
        closed += 1
    i += 1
print(json.dumps({"cases": i, "closed_by_broker": closed, "counts": counts}))
