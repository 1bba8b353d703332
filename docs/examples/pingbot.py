"""Answers "!ping" in a room with "pong": TeamChat's API with the standard library only.

TEAMCHAT_URL=http://127.0.0.1:8000 TEAMCHAT_TOKEN=tc_... python pingbot.py general
"""

import json
import os
import sys
import time
import urllib.request

URL, TOKEN, ROOM = os.environ["TEAMCHAT_URL"], os.environ["TEAMCHAT_TOKEN"], sys.argv[1]
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
HISTORY = f"{URL}/api/rooms/{ROOM}/messages/"


def api(url, body=None):  # a POST when there is a body
    request = urllib.request.Request(url, body and json.dumps(body).encode(), HEADERS)  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return json.load(response)


last = max([m["id"] for m in api(HISTORY + "?limit=1")["messages"]], default=0)
while True:
    for message in api(f"{HISTORY}?after={last}&limit=100")["messages"]:
        last = message["id"]
        if message["body"].strip() == "!ping":
            api(HISTORY, {"body": f"pong, @{message['user']}", "nonce": f"pong-{last}"})
    time.sleep(2)
