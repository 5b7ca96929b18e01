"""End-to-end checks of `eventhub echo` with the Python `websockets` client.

Run from the repository root after `cargo build`:

    python3 -m pip install -r tests/python/requirements.txt
    python3 -m pytest tests/python -q

The binary is `$EVENTHUB_BIN`, or `target/debug/eventhub` under the
repository root (see conftest.py).
"""

import pytest
from websockets.exceptions import ConnectionClosedOK
from websockets.sync.client import connect

from conftest import raw_http

TIMEOUT = 10.0

@pytest.fixture(scope="module")
def server(eventhub):
    return eventhub("echo")

def ws(server):
    return connect(server.url, open_timeout=TIMEOUT, close_timeout=TIMEOUT, max_size=4 << 20)

def test_text_message_is_echoed(server):
    with ws(server) as c:
        c.send("hello from python ✓")
        assert c.recv(timeout=TIMEOUT) == "hello from python ✓"

def test_binary_message_is_echoed(server):
    data = bytes(range(256))
    with ws(server) as c:
        c.send(data)
        got = c.recv(timeout=TIMEOUT)
        assert isinstance(got, bytes)
        assert got == data

def test_one_mib_message_is_echoed_intact(server):
    data = bytes((i * 31) % 251 for i in range(1 << 20))
    with ws(server) as c:
        c.send(data)
        assert c.recv(timeout=TIMEOUT) == data

def test_ping_is_answered_with_pong(server):
    with ws(server) as c:
        pong = c.ping(b"are you there?")
        assert pong.wait(TIMEOUT), "no pong within the timeout"

def test_close_1000_round_trip(server):
    with ws(server) as c:
        c.send("before close")
        assert c.recv(timeout=TIMEOUT) == "before close"
        c.close(code=1000, reason="bye")
        assert c.close_code == 1000
        with pytest.raises(ConnectionClosedOK):
            c.recv(timeout=TIMEOUT)

def test_wrong_websocket_version_is_refused_with_426(server):
    request = (
        "GET / HTTP/1.1\r\n"
        f"Host: {server.host}:{server.port}\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 8\r\n"
        "\r\n"
    )
    status, headers, body = raw_http(server.host, server.port, request)
    assert status.startswith("HTTP/1.1 426"), status
    assert headers.get("sec-websocket-version") == "13"
    assert b'"error"' in body and b'"message"' in body
