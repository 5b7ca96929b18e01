#!/usr/bin/env python3
"""A publisher flood beside a measured run: what it costs a healthy subscriber.

Floods `POST /v1/events` on one channel (500-event batches, as fast as the
hub answers, from several threads) while subscribers of that channel read
and discard at full speed, for a fixed time; prints the 202s, the 503s and
the events accepted. Run it beside `eventhub-load` on another channel to see
what a flood does to those subscribers' latency and to the hub's memory
(README, "Publisher floods"). Standard library only.

    perf/flood.py --addr 127.0.0.1:8080 --token T --channel alerts --seconds 10
"""
import argparse
import json
import socket
import threading
import time


def subscribe(addr, token, channel):
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)))
    s.sendall(
        (
            f"GET /v1/ws/subscribe?event_types={channel} HTTP/1.1\r\nHost: {addr}\r\n"
            f"Authorization: Bearer {token}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(4096)
    if not head.startswith(b"HTTP/1.1 101"):
        raise SystemExit(f"subscribe refused: {head.splitlines()[0]!r}")
    return s


def drain(s, stop, closed):
    s.settimeout(0.5)
    while not stop.is_set():
        try:
            if not s.recv(1 << 16):
                closed.append(1)
                return
        except socket.timeout:
            pass


def post(addr, token, body):
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port))) as s:
        s.sendall(
            (
                f"POST /v1/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n"
            ).encode()
            + body
        )
        resp = b""
        while chunk := s.recv(65536):
            resp += chunk
    return int(resp.split(b" ", 2)[1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--addr", default="127.0.0.1:8080")
    ap.add_argument("--token", required=True)
    ap.add_argument("--channel", default="alerts")
    ap.add_argument("--publishers", type=int, default=8)
    ap.add_argument("--subscribers", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=10)
    a = ap.parse_args()

    one = {"event_type": a.channel, "message": "flood", "body": {"pad": "p" * 150}}
    body = json.dumps([one] * 500).encode()
    stop, closed = threading.Event(), []
    subs = [subscribe(a.addr, a.token, a.channel) for _ in range(a.subscribers)]
    readers = [threading.Thread(target=drain, args=(s, stop, closed)) for s in subs]
    counts = {"accepted": 0, "refused": 0, "other": 0}
    lock = threading.Lock()
    end = time.monotonic() + a.seconds

    def publish():
        while time.monotonic() < end:
            status = post(a.addr, a.token, body)
            with lock:
                key = {202: "accepted", 503: "refused"}.get(status, "other")
                counts[key] += 1

    pubs = [threading.Thread(target=publish) for _ in range(a.publishers)]
    for t in readers + pubs:
        t.start()
    for t in pubs:
        t.join()
    stop.set()
    for t in readers:
        t.join()
    print(
        f"flood: {counts['accepted']} posts accepted ({counts['accepted'] * 500} events), "
        f"{counts['refused']} refused with 503, {counts['other']} other; "
        f"{len(closed)} of {a.subscribers} flood subscribers closed"
    )


if __name__ == "__main__":
    main()
