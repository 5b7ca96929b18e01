#!/usr/bin/env python3
"""What no context takeover costs in ratio: 200 Docker-like container events
in the hub's envelope (about 650 bytes each, random ids), compressed as
permessage-deflate messages (raw DEFLATE, sync flush, the 4-byte tail
removed) each on its own (what the hub does: one frame for every
subscriber) and with one compressor kept across them (what a server that
compresses per connection, with context takeover, can do).

    python3 perf/deflate_takeover.py
"""
import json
import random
import zlib

random.seed(1)


def event(i: int) -> str:
    cid = "%064x" % random.getrandbits(256)
    image = "registry.example.com/team/web:1.%d" % (i % 7)
    return json.dumps(
        {
            "id": "%064x" % random.getrandbits(256),
            "event_type": "container",
            "timestamp": "2026-12-01T17:45:%02d.%06dZ" % (i % 60, random.randrange(10**6)),
            "message": "stop",
            "body": {
                "status": "stop", "id": cid, "from": image, "Type": "container",
                "Action": random.choice(["start", "stop"]),
                "Actor": {"ID": cid, "Attributes": {
                    "exitCode": "0", "image": image, "name": "web-%d" % (i % 40),
                    "com.docker.compose.project": "shop", "com.docker.compose.service": "web"}},
                "scope": "local", "time": 1796147375 + i, "timeNano": 1796147375691960979 + i * 1000,
            },
            "seq": 1000 + i,
        },
        separators=(",", ":"),
    )


def compressed(messages, level: int, takeover: bool) -> int:
    total = 0
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    for m in messages:
        if not takeover:
            c = zlib.compressobj(level, zlib.DEFLATED, -15)
        out = c.compress(m.encode()) + c.flush(zlib.Z_SYNC_FLUSH)
        total += len(out) - 4
    return total


messages = [event(i) for i in range(200)]
raw = sum(len(m) for m in messages)
for level in (2, 6):
    alone = compressed(messages, level, False)
    kept = compressed(messages, level, True)
    n = len(messages)
    print(
        f"level {level}: {raw / n:.0f} B per event; no context takeover {alone / n:.0f} B "
        f"({100 * (1 - alone / raw):.1f}% smaller); context takeover {kept / n:.0f} B "
        f"({100 * (1 - kept / raw):.1f}% smaller)"
    )
