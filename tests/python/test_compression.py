"""permessage-deflate with real clients: Python `websockets` (which offers
it by default) and Node `ws` with `perMessageDeflate`, beside a client that
does not offer it, all subscribed to one hub at once: each gets the same
events, the compressing ones in compressed frames (the hub's counters say
so), and a compressing publisher's messages are inflated.
"""

import contextlib
import json
import pathlib
import subprocess
import urllib.request

import pytest
from websockets.sync.client import connect

from conftest import PRINCIPALS, PRODUCER_TOKEN, READER_TOKEN, ADMIN_TOKEN, REPO

TIMEOUT = 10.0

CONFIG = """
[hub]
max_connections_per_ip = 0
connect_rate_per_ip = 0.0
""" + PRINCIPALS

NODE_WS = REPO / "target" / "node" / "node_modules" / "ws"


@pytest.fixture(scope="module")
def hub(eventhub):
    return eventhub("serve", config=CONFIG)


@contextlib.contextmanager
def subscribe(hub, compression):
    with connect(
        hub.ws_base + "/v1/ws/subscribe?event_types=pdfm",
        additional_headers={"Authorization": f"Bearer {READER_TOKEN}"},
        open_timeout=TIMEOUT,
        compression=compression,
    ) as c:
        hello = json.loads(c.recv(timeout=TIMEOUT))
        assert hello["event_type"] == "global"
        yield c


def negotiated(c) -> bool:
    return any(type(e).__name__ == "PerMessageDeflate" for e in c.protocol.extensions)


def post(hub, events):
    req = urllib.request.Request(
        hub.http_base + "/v1/events",
        data=json.dumps(events).encode(),
        headers={"Authorization": f"Bearer {PRODUCER_TOKEN}"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
        assert resp.status == 202
        return json.loads(resp.read())


def metric(hub, name) -> int:
    req = urllib.request.Request(
        hub.http_base + "/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
        text = resp.read().decode()
    return sum(
        int(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


def events(n):
    """Events of 300-1500 bytes (over compression.min_bytes), and one small
    one (sent plain)."""
    out = [{"event_type": "pdfm", "message": "tiny"}]
    for i in range(n):
        out.append(
            {
                "event_type": "pdfm",
                "message": "VM_STATE_CHANGED",
                "body": {
                    "vm_id": f"vm-{i:04d}",
                    "host": "hv-17.dc1.example.net",
                    "labels": {f"team-{k}": f"value-{i}-{k}" for k in range(5 + i % 30)},
                },
            }
        )
    return out


def read_events(c, n):
    return [json.loads(c.recv(timeout=TIMEOUT)) for _ in range(n)]


def test_python_websockets_with_default_settings_gets_the_same_events_compressed(hub):
    before = metric(hub, "eventhub_deflated_deliveries_total")
    with subscribe(hub, "deflate") as zipped, subscribe(hub, None) as plain:
        assert negotiated(zipped), zipped.response.headers
        assert not negotiated(plain)
        assert "permessage-deflate" in zipped.response.headers["Sec-WebSocket-Extensions"]
        assert "server_no_context_takeover" in zipped.response.headers["Sec-WebSocket-Extensions"]
        batch = events(40)
        accepted = post(hub, batch)
        got_z = read_events(zipped, len(batch))
        got_p = read_events(plain, len(batch))
        assert got_z == got_p
        assert [e["seq"] for e in got_z] == [e["seq"] for e in accepted["events"]]
        assert [e["message"] for e in got_z] == [e["message"] for e in batch]
    # 40 of the 41 frames were big enough to compress, for the one
    # compressing subscriber.
    assert metric(hub, "eventhub_deflated_deliveries_total") - before == 40


def test_a_compressing_publisher_socket_is_inflated(hub):
    with subscribe(hub, None) as reader, connect(
        hub.ws_base + "/v1/ws/publish?ack=true",
        additional_headers={"Authorization": f"Bearer {PRODUCER_TOKEN}"},
        open_timeout=TIMEOUT,
    ) as pub:
        assert negotiated(pub)
        body = events(25)[1:]
        pub.send(json.dumps(body))
        ack = json.loads(pub.recv(timeout=TIMEOUT))
        assert ack["message"] == "published", ack
        got = read_events(reader, len(body))
        assert [e["body"] for e in got] == [e["body"] for e in body]


def test_node_ws_with_per_message_deflate_gets_the_events_compressed(hub):
    if not NODE_WS.exists():
        pytest.fail(f"Node ws not found at {NODE_WS}: run scripts/setup.sh")
    script = """
const WebSocket = require(process.argv[1]);
const url = process.argv[2], token = process.argv[3], want = Number(process.argv[4]);
const ws = new WebSocket(url, { headers: { Authorization: `Bearer ${token}` }, perMessageDeflate: true });
const got = [];
ws.on('upgrade', (res) => process.stderr.write(`ext=${res.headers['sec-websocket-extensions']}\\n`));
ws.on('open', () => process.stdout.write('open\\n'));
ws.on('message', (data) => {
  const m = JSON.parse(data.toString());
  if (m.seq !== undefined) got.push(m);
  if (got.length === want) { process.stdout.write(JSON.stringify(got) + '\\n'); ws.close(); }
});
ws.on('error', (e) => { process.stderr.write(String(e)); process.exit(1); });
"""
    batch = events(20)
    node = subprocess.Popen(
        ["node", "-e", script, str(NODE_WS), hub.ws_base + "/v1/ws/subscribe?event_types=pdfm",
         READER_TOKEN, str(len(batch))],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert node.stdout.readline().strip() == "open"
        with subscribe(hub, None) as plain:
            post(hub, batch)
            want = read_events(plain, len(batch))
        out, err = node.communicate(timeout=TIMEOUT)
    finally:
        node.kill()
    assert "permessage-deflate" in err, err
    assert json.loads(out.strip()) == want


def test_echo_round_trips_compressed_messages_of_every_size(eventhub):
    echo = eventhub("echo")
    with connect(echo.ws_base + "/", open_timeout=TIMEOUT) as c:
        assert negotiated(c)
        for size in [1, 200, 5000, 300_000]:
            msg = ("event " * (size // 6 + 1))[:size]
            c.send(msg)
            assert c.recv(timeout=TIMEOUT) == msg
