"""End-to-end checks of `eventhub serve` (the Events Hub API) with the
Python `websockets` client.

Run from the repository root after `cargo build`:

    python3 -m pip install -r tests/python/requirements.txt
    python3 -m pytest tests/python -q

The binary is `$EVENTHUB_BIN`, or `target/debug/eventhub` under the
repository root (see conftest.py).
"""

import json
import re
import urllib.error
import urllib.request

import pytest
from websockets.sync.client import connect

from conftest import assert_delivered, CONFIRMATION, PRINCIPALS, PRODUCER_TOKEN, READER_TOKEN

TIMEOUT = 10.0

CONFIG = """
[hub]
max_connections_per_ip = 0
connect_rate_per_ip = 0.0
""" + PRINCIPALS


@pytest.fixture(scope="module")
def hub(eventhub):
    return eventhub("serve", config=CONFIG)


def ws(hub, path, token):
    return connect(
        hub.ws_base + path,
        additional_headers={"Authorization": f"Bearer {token}"},
        open_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
    )


def post_events(hub, event) -> dict:
    req = urllib.request.Request(
        hub.http_base + "/v1/events",
        data=json.dumps(event).encode(),
        headers={"Authorization": f"Bearer {PRODUCER_TOKEN}"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
        assert resp.status == 202
        return json.loads(resp.read())


def recv_json(c) -> dict:
    return json.loads(c.recv(timeout=TIMEOUT))


def test_subscriber_receives_confirmation_and_published_event(hub):
    with ws(hub, "/api/v1/ws/subscribe?event_types=pdfm,health,orchestrator", READER_TOKEN) as c:
        hello = recv_json(c)
        assert hello["event_type"] == "global"
        assert hello["message"] == CONFIRMATION
        assert sorted(hello["body"]["subscriptions"]) == ["global", "health", "orchestrator", "pdfm"]
        assert re.fullmatch(r"[0-9a-f]{64}", hello["id"])

        event = {
            "event_type": "pdfm",
            "message": "VM_STATE_CHANGED",
            "body": {"previous_state": "suspended", "current_state": "resuming"},
        }
        accepted = post_events(hub, event)
        assert accepted["accepted"] == 1
        assert_delivered(recv_json(c), event, accepted)


def test_publisher_socket_gets_an_error_for_an_invalid_message_and_goes_on(hub):
    with ws(hub, "/v1/ws/subscribe?event_types=orchestrator", READER_TOKEN) as sub, ws(
        hub, "/v1/ws/publish?ack=true", PRODUCER_TOKEN
    ) as pub:
        assert recv_json(sub)["message"] == CONFIRMATION

        pub.send("this is not JSON")
        err = recv_json(pub)
        assert err["event_type"] == "system"
        assert err["message"] == "error"
        assert err["body"]["error"] == "invalid_event"

        pub.send(json.dumps({"event_type": "no-such-channel", "message": "x"}))
        err = recv_json(pub)
        assert err["message"] == "error"
        assert err["body"]["error"] == "invalid_event"

        pub.send(json.dumps({"event_type": "orchestrator", "message": "DEPLOYED", "body": {"n": 1}}))
        ack = recv_json(pub)
        assert ack["message"] == "published"
        seq = ack["body"]["events"][0]["seq"]

        got = recv_json(sub)
        assert got["event_type"] == "orchestrator"
        assert got["message"] == "DEPLOYED"
        assert got["body"] == {"n": 1}
        assert got["seq"] == seq
