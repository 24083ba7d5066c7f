"""A device calling the HTTPS API with its own certificate (mTLS), as AWS
documents for port 8443: Python's http.client with an SSL context holding
the device's certificate and key, the fleet CA as the trust root.

Usage: https_device.py --port <port> --ca ca.pem --cert dev.cert.pem --key dev.key.pem
                       --requests '[["POST", "/topics/dt/m/dev/telemetry?qos=1", "{...}"], ...]'

Each request goes on a new connection. Prints one JSON list: per request
its status, `x-amzn-ErrorType` and body (JSON when it parses), or the
connection error.
"""

import argparse
import http.client
import json
import ssl

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--ca", required=True)
ap.add_argument("--cert", required=True)
ap.add_argument("--key", required=True)
ap.add_argument("--requests", required=True)
args = ap.parse_args()

context = ssl.create_default_context(cafile=args.ca)
context.load_cert_chain(args.cert, args.key)
context.check_hostname = False

results = []
for method, target, body in json.loads(args.requests):
    try:
        conn = http.client.HTTPSConnection("127.0.0.1", args.port, context=context, timeout=10)
        conn.request(method, target, body=body.encode() if body else None)
        r = conn.getresponse()
        text = r.read().decode(errors="replace")
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = text
        results.append({"status": r.status, "type": r.getheader("x-amzn-ErrorType"), "body": parsed})
        conn.close()
    except (OSError, ssl.SSLError) as e:
        results.append({"error": str(e)})
print(json.dumps(results))
