"""End-to-end checks of `eventhub echo` with the Python `websockets` client.

Run from the repository root after `cargo build`:

    python3 -m pip install -r tests/python/requirements.txt
    python3 -m pytest tests/python -q

The binary is `$EVENTHUB_BIN`, or `target/debug/eventhub` under the
repository root.
"""

import os
import pathlib
import queue
import re
import signal
import socket
import subprocess
import tempfile
import threading

import pytest
from websockets.exceptions import ConnectionClosedOK
from websockets.sync.client import connect

TIMEOUT = 10.0
REPO = pathlib.Path(__file__).resolve().parents[2]
LISTENING = re.compile(r"^eventhub echo listening on ws://(\S+):(\d+) \((\d+) workers\)$")


def binary_path() -> str:
    path = os.environ.get("EVENTHUB_BIN", "target/debug/eventhub")
    if not os.path.isabs(path) and not os.path.exists(path):
        path = str(REPO / path)
    return path


class Server:
    """The real binary on an ephemeral port; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, workers: int = 2):
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [binary_path(), "echo", "--listen", "127.0.0.1:0", "--workers", str(workers)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        lines: "queue.Queue[str]" = queue.Queue()

        def pump():
            for line in self.proc.stdout:
                lines.put(line)
            lines.put("")

        threading.Thread(target=pump, daemon=True).start()
        try:
            line = lines.get(timeout=TIMEOUT).rstrip("\n")
        except queue.Empty:
            self.stop()
            pytest.fail(f"eventhub did not announce its address within {TIMEOUT}s")
        m = LISTENING.match(line)
        if not m:
            self.stop()
            pytest.fail(f"unexpected first stdout line: {line!r}")
        self.host, self.port = m.group(1), int(m.group(2))
        self.url = f"ws://{self.host}:{self.port}/"

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    code = s.stop()
    assert code == 0, f"eventhub exited with {code} after SIGTERM"


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
    with socket.create_connection((server.host, server.port), timeout=TIMEOUT) as s:
        s.sendall(request.encode())
        response = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            response += chunk
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0].startswith("HTTP/1.1 426"), lines[0]
    headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
    assert headers.get("sec-websocket-version") == "13"
    assert b'"error"' in body and b'"message"' in body
