"""An outgoing webhook receiver with the standard library only (docs/webhooks.md).

TEAMCHAT_WEBHOOK_SECRET=... PORT=8080 python webhook_receiver.py
Checks the signature, answers each event once (a retry of an event it has
handled gets an empty answer), and replies with a greeting.
"""

import hashlib
import hmac
import json
import os
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

SECRET = os.environ["TEAMCHAT_WEBHOOK_SECRET"]
seen: set[str] = set()  # event ids already handled: keep them in your database


def verified(secret: str, timestamp: str, signature: str, body: bytes, max_age: int = 300) -> bool:
    """Slack's v0 scheme: v0=hex(HMAC-SHA256(secret, "v0:{timestamp}:{body}")), recent only."""
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > max_age:
        return False
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


class Hook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        timestamp = self.headers.get("X-TeamChat-Request-Timestamp", "")
        signature = self.headers.get("X-TeamChat-Signature", "")
        if not verified(SECRET, timestamp, signature, body):
            self.send_response(401)
            self.end_headers()
            return
        event = json.loads(body)
        answer = {}
        if event["event_id"] not in seen:
            seen.add(event["event_id"])
            if event["type"] == "message":
                answer = {"text": f"Hi @{event['message']['user']}, on it."}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


if __name__ == "__main__":
    HTTPServer(("127.0.0.1", int(os.environ.get("PORT", "8080"))), Hook).serve_forever()
