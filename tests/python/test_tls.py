"""End-to-end checks of wss (TLS) on `eventhub serve` with clients that share
nothing with the server's rustls: Python's `ssl` (OpenSSL) under the
`websockets` client and `http.client`, and Node's `wscat` (Node's TLS).

Run from the repository root after `cargo build`:

    python3 -m pip install -r tests/python/requirements.txt
    python3 -m pytest tests/python -q

The certificates come from `eventhub dev-cert` (a development CA and a
leaf for localhost, 127.0.0.1 and ::1) and, for the extended key usage
checks of mutual TLS, from the `openssl` CLI. The wscat check looks for
`wscat` on PATH, in node_modules/.bin or target/node/node_modules/.bin
(scripts/setup.sh installs it there); without it the check is skipped, or
fails when EVENTHUB_REQUIRE_WSCAT is set.

Every wait is bounded by TIMEOUT; "did not receive X" is shown by ordering
(an event the client must not get is published before a marker it must get,
and the marker comes first), never by waiting.

wss connections use websockets' asyncio client (`Wss` below), not its sync
client: the sync client reads the socket in a background thread while the
caller writes, and on an `ssl.SSLSocket` (one OpenSSL object used from two
threads at once) it now and then never sends its upgrade request after a
TLS 1.3 handshake (about 1 connection in 300-700 here, against this hub and
against a plain Python `ssl` server alike; the client's TCP socket shows
only the handshake's bytes sent). The asyncio client keeps TLS in one
thread (a memory BIO). Plain ws still uses the sync client.
"""

import asyncio
import http.client
import json
import os
import pathlib
import queue
import shutil
import socket
import ssl
import subprocess
import threading
import urllib.parse

import pytest
from websockets.asyncio.client import connect as connect_async
from websockets.sync.client import connect

from conftest import assert_delivered, free_port, raw_http, ADMIN_TOKEN, CONFIRMATION, PRINCIPALS, PRODUCER_TOKEN, READER_TOKEN, REPO, TIMEOUT



# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certs(dev_cert_factory):
    """The server's development CA and certificate."""
    return dev_cert_factory("server-dev-cert")


def config(cert, **tls) -> str:
    """A hub config with no per-IP limits, the principals, and a `[tls]`
    section serving `cert` (a dev-cert directory) plus `tls` keys."""
    lines = [f'cert = "{cert.cert}"', f'key = "{cert.key}"']
    for key, value in tls.items():
        if isinstance(value, bool):
            lines.append(f"{key} = {'true' if value else 'false'}")
        else:
            lines.append(f'{key} = "{value}"')
    tls_section = "\n".join(lines)
    return f"""
[hub]
max_connections_per_ip = 0
connect_rate_per_ip = 0.0

[tls]
{tls_section}
{PRINCIPALS}"""


def client_context(ca=None, maximum=None, identity=None) -> ssl.SSLContext:
    """A verifying client context trusting `ca` (else the system's roots),
    capped at TLS version `maximum`, presenting `identity` = (cert, key)."""
    ctx = ssl.create_default_context(cafile=str(ca) if ca else None)
    if maximum is not None:
        ctx.maximum_version = maximum
    if identity is not None:
        ctx.load_cert_chain(str(identity[0]), str(identity[1]))
    return ctx


class Wss:
    """A wss connection of websockets' asyncio client, driven from the
    test's thread: each call runs the connection's own event loop until it
    is done (or TIMEOUT), so TLS stays in one thread (see the module's
    docstring)."""

    def __init__(self, uri, ctx, token):
        self.loop = asyncio.new_event_loop()
        try:
            self.conn = self.loop.run_until_complete(
                connect_async(
                    uri,
                    ssl=ctx,
                    additional_headers={"Authorization": f"Bearer {token}"},
                    open_timeout=TIMEOUT,
                    close_timeout=TIMEOUT,
                    proxy=None,
                )
            )
        except BaseException:
            self.loop.close()
            raise

    def recv(self, timeout=TIMEOUT):
        return self.loop.run_until_complete(asyncio.wait_for(self.conn.recv(), timeout))

    def tls_version(self) -> str:
        return self.conn.transport.get_extra_info("ssl_object").version()

    def close(self):
        try:
            self.loop.run_until_complete(self.conn.close())
        finally:
            self.loop.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def wss(hub, path, token, ctx) -> Wss:
    """A wss connection to the hub's TLS listener, as `localhost`."""
    assert hub.tls_port is not None, f"no TLS address announced: {hub.first_line!r}"
    return Wss(hub.wss_base + path, ctx, token)


def https(hub, ctx, method, path, token, body=None, port=None):
    """One https request to the TLS listener (or `port`) as `localhost`:
    (status, parsed JSON body)."""
    port = port if port is not None else hub.tls_port
    assert port is not None, f"no TLS address announced: {hub.first_line!r}"
    conn = http.client.HTTPSConnection("localhost", port, timeout=TIMEOUT, context=ctx)
    try:
        headers = {"Authorization": f"Bearer {token}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        text = resp.read()
        return resp.status, json.loads(text) if text else None
    finally:
        conn.close()


def publish_https(hub, ctx, event, port=None) -> dict:
    """`POST /v1/events` over https as the producer; must be 202."""
    status, answer = https(hub, ctx, "POST", "/v1/events", PRODUCER_TOKEN, event, port=port)
    assert status == 202, answer
    assert answer["accepted"] == 1, answer
    return answer


def recv_json(c) -> dict:
    return json.loads(c.recv(timeout=TIMEOUT))


def assert_confirmation(hello, subscriptions):
    assert hello["event_type"] == "global", hello
    assert hello["message"] == CONFIRMATION, hello
    assert sorted(hello["body"]["subscriptions"]) == sorted(subscriptions), hello
    assert hello["body"]["client_id"], hello


def pem_der(path) -> bytes:
    """The DER of the first certificate in a PEM file."""
    text = pathlib.Path(path).read_text()
    end = "-----END CERTIFICATE-----"
    return ssl.PEM_cert_to_DER_cert(text[: text.index(end) + len(end)] + "\n")


def healthz_over_tls(port, ctx) -> bytes:
    """A TLS handshake with `ctx` to 127.0.0.1:port as `localhost`, then
    `GET /healthz`; returns what came back (raises what the handshake or the
    read raised)."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            got = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    return got
                got += chunk


def assert_tls_refused(hub, ctx, alert=None):
    """The hub's TLS listener refuses a client with `ctx`: the handshake or
    the first read fails with an alert from the hub (`alert` if given), and
    no HTTP answer comes back."""
    try:
        got = healthz_over_tls(hub.tls_port, ctx)
    except ssl.SSLCertVerificationError as e:
        pytest.fail(f"the client refused the server, not the other way round: {e!r}")
    except ssl.SSLError as e:
        # OpenSSL names an alert it received from the peer *_ALERT_*.
        reason = e.reason or ""
        assert "_ALERT_" in reason, f"expected an alert from the hub, got {e!r}"
        if alert is not None:
            assert alert in reason, f"expected a {alert} alert, got {e!r}"
        return
    pytest.fail(f"the hub answered a client it should refuse: {got[:200]!r}; stderr:\n{hub.log_text()}")


def subscribe_and_receive_over_wss(hub, ctx, marker):
    """Subscribes to pdfm over wss with `ctx`, publishes `marker` over
    https with `ctx`, and checks it arrives; returns the TLS version used."""
    with wss(hub, "/v1/ws/subscribe?event_types=pdfm", READER_TOKEN, ctx) as c:
        assert_confirmation(recv_json(c), ["global", "pdfm"])
        accepted = publish_https(hub, ctx, {"event_type": "pdfm", "message": marker})
        got = recv_json(c)
        assert (got["event_type"], got["message"]) == ("pdfm", marker)
        assert got["seq"] == accepted["events"][0]["seq"]
        return c.tls_version()


# ---------------------------------------------------------------------------
# 1. The guide's flow over wss
# ---------------------------------------------------------------------------


def test_guide_flow_over_wss_subscribe_publish_receive_unsubscribe(eventhub, certs):
    hub = eventhub("serve", config=config(certs))
    assert hub.plain_port is None, f"wss replaces plain ws on server.listen: {hub.first_line!r}"
    assert hub.tls_port is not None, hub.first_line
    ctx = client_context(certs.ca)
    with wss(hub, "/v1/ws/subscribe?event_types=pdfm", READER_TOKEN, ctx) as c:
        assert c.tls_version() in ("TLSv1.3", "TLSv1.2")
        hello = recv_json(c)
        assert_confirmation(hello, ["global", "pdfm"])
        client_id = hello["body"]["client_id"]

        event = {
            "event_type": "pdfm",
            "message": "VM_STATE_CHANGED",
            "body": {"previous_state": "suspended", "current_state": "resuming"},
        }
        accepted = publish_https(hub, ctx, event)
        assert_delivered(recv_json(c), event, accepted)

        status, answer = https(
            hub,
            ctx,
            "POST",
            "/v1/ws/unsubscribe",
            READER_TOKEN,
            {"client_id": client_id, "event_types": ["pdfm"]},
        )
        assert status == 200, answer
        assert answer["message"] == "Successfully unsubscribed from event types"
        assert answer["remaining_subscriptions"] == ["global"]
        note = recv_json(c)
        assert note["event_type"] == "system", note
        assert note["message"] == "subscriptions", note
        assert note["body"]["action"] == "unsubscribe", note
        assert note["body"]["subscriptions"] == ["global"], note

        # pdfm no longer arrives: the global marker published after it does.
        publish_https(hub, ctx, {"event_type": "pdfm", "message": "after-unsubscribe"})
        publish_https(hub, ctx, {"event_type": "global", "message": "marker"})
        got = recv_json(c)
        assert (got["event_type"], got["message"]) == ("global", "marker")


# ---------------------------------------------------------------------------
# 2. The Docker-style stream over wss
# ---------------------------------------------------------------------------


def container_event(name, action, time):
    return {
        "event_type": "container",
        "body": {
            "id": f"{name}0123456789",
            "Type": "container",
            "Action": action,
            "Actor": {"ID": f"{name}0123456789", "Attributes": {"name": name, "image": "busybox:latest"}},
            "time": time,
        },
    }


def test_events_ws_over_wss_streams_a_published_container_event(eventhub, certs):
    hub = eventhub("serve", config=config(certs))
    ctx = client_context(certs.ca)
    filters = urllib.parse.quote(json.dumps({"event": {"stop": True}}, separators=(",", ":")))
    with wss(hub, f"/events/ws?filters={filters}", ADMIN_TOKEN, ctx) as c:
        # Filtered out (a start), then the stop that must come first.
        publish_https(hub, ctx, container_event("web", "start", 1_000))
        publish_https(hub, ctx, container_event("web", "stop", 1_010))
        got = recv_json(c)
        assert got["Type"] == "container", got
        assert got["Action"] == "stop", got
        assert got["status"] == "stop", got
        assert got["id"] == "web0123456789", got
        assert got["from"] == "busybox:latest", got
        assert got["Actor"]["Attributes"]["name"] == "web", got
        assert got["time"] == 1_010, got


# ---------------------------------------------------------------------------
# 3. An untrusted CA
# ---------------------------------------------------------------------------


def test_client_that_does_not_trust_the_dev_ca_fails_verification(eventhub, certs):
    hub = eventhub("serve", config=config(certs))
    with pytest.raises(ssl.SSLCertVerificationError):
        with wss(hub, "/v1/ws/subscribe?event_types=pdfm", READER_TOKEN, client_context()):
            pass
    # What it refused is the dev certificate the hub was given.
    unverified = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", hub.tls_port), timeout=TIMEOUT) as raw:
        with unverified.wrap_socket(raw, server_hostname="localhost") as s:
            presented = s.getpeercert(binary_form=True)
    assert presented == pem_der(certs.cert)
    # And trusting the CA is enough: the same connection then succeeds.
    with wss(hub, "/v1/ws/subscribe?event_types=pdfm", READER_TOKEN, client_context(certs.ca)) as c:
        assert_confirmation(recv_json(c), ["global", "pdfm"])


# ---------------------------------------------------------------------------
# 4. TLS versions
# ---------------------------------------------------------------------------


def test_tls12_client_works_with_min_version_12(eventhub, certs):
    hub = eventhub("serve", config=config(certs, min_version="1.2"))
    ctx = client_context(certs.ca, maximum=ssl.TLSVersion.TLSv1_2)
    assert subscribe_and_receive_over_wss(hub, ctx, "over-tls12") == "TLSv1.2"


def test_tls12_client_is_refused_with_min_version_13(eventhub, certs):
    hub = eventhub("serve", config=config(certs, min_version="1.3"))
    ctx = client_context(certs.ca, maximum=ssl.TLSVersion.TLSv1_2)
    with pytest.raises(ssl.SSLError) as refused:
        with wss(hub, "/v1/ws/subscribe?event_types=pdfm", READER_TOKEN, ctx):
            pass
    assert "ALERT_PROTOCOL_VERSION" in (refused.value.reason or ""), refused.value
    # A TLS 1.3 client gets in.
    assert subscribe_and_receive_over_wss(hub, client_context(certs.ca), "over-tls13") == "TLSv1.3"


# ---------------------------------------------------------------------------
# 5. Plain ws:// to the TLS port
# ---------------------------------------------------------------------------


def test_plain_websocket_upgrade_on_the_tls_port_gets_400_tls_required(eventhub, certs):
    hub = eventhub("serve", config=config(certs))
    request = (
        "GET /v1/ws/subscribe?event_types=pdfm HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{hub.tls_port}\r\n"
        f"Authorization: Bearer {READER_TOKEN}\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "\r\n"
    )
    status, headers, body = raw_http("127.0.0.1", hub.tls_port, request)
    assert status.startswith("HTTP/1.1 400"), status
    assert headers.get("content-type") == "application/json", headers
    answer = json.loads(body)
    assert answer["error"] == "tls_required", answer
    assert answer["message"], answer


# ---------------------------------------------------------------------------
# 6. Both listeners
# ---------------------------------------------------------------------------


def assert_both_listeners_deliver(hub, certs, tls_port):
    ctx = client_context(certs.ca)
    assert tls_port != hub.plain_port
    with connect(
        f"ws://127.0.0.1:{hub.plain_port}/v1/ws/subscribe?event_types=pdfm",
        additional_headers={"Authorization": f"Bearer {READER_TOKEN}"},
        open_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
        proxy=None,
    ) as plain, Wss(
        f"wss://localhost:{tls_port}/v1/ws/subscribe?event_types=pdfm", ctx, READER_TOKEN
    ) as secure:
        assert_confirmation(recv_json(plain), ["global", "pdfm"])
        assert_confirmation(recv_json(secure), ["global", "pdfm"])
        accepted = publish_https(hub, ctx, {"event_type": "pdfm", "message": "to-both"}, port=tls_port)
        from_plain, from_secure = recv_json(plain), recv_json(secure)
        assert from_plain == from_secure
        assert from_plain["message"] == "to-both"
        assert from_plain["id"] == accepted["events"][0]["id"]


def test_tls_listen_config_serves_wss_beside_plain_ws_and_both_deliver(eventhub, certs):
    hub = eventhub("serve", config=config(certs, listen="127.0.0.1:0"))
    assert hub.plain_port is not None and hub.tls_port is not None, (
        "the first stdout line must name both addresses "
        f"(http://A and https://B), got {hub.first_line!r}"
    )
    assert_both_listeners_deliver(hub, certs, hub.tls_port)


def test_tls_listen_flag_serves_wss_beside_plain_ws_and_both_deliver(eventhub, certs):
    # The port is chosen here, so this delivery check does not depend on
    # the announcement (the test above checks that).
    port = free_port()
    hub = eventhub("serve", config=config(certs), args=["--tls-listen", f"127.0.0.1:{port}"])
    assert hub.plain_port is not None, hub.first_line
    assert_both_listeners_deliver(hub, certs, port)


def test_tls_self_signed_flag_serves_the_dev_cert_of_EVENTHUB_DEV_CERT_DIR(eventhub, tmp_path):
    dev_dir = tmp_path / "dev-cert"
    hub = eventhub(
        "serve",
        config=config_without_tls(),
        args=["--tls-self-signed"],
        env={"EVENTHUB_DEV_CERT_DIR": str(dev_dir)},
    )
    assert hub.tls_port is not None, hub.first_line
    assert (dev_dir / "ca.pem").is_file(), "--tls-self-signed made no dev cert there"
    ctx = client_context(dev_dir / "ca.pem")
    subscribe_and_receive_over_wss(hub, ctx, "self-signed")


def config_without_tls() -> str:
    return f"""
[hub]
max_connections_per_ip = 0
connect_rate_per_ip = 0.0
{PRINCIPALS}"""


# ---------------------------------------------------------------------------
# 7. wscat over wss
# ---------------------------------------------------------------------------


def find_wscat() -> "str | None":
    found = shutil.which("wscat")
    if found:
        return found
    for d in (REPO / "node_modules/.bin", REPO / "target/node/node_modules/.bin"):
        if (d / "wscat").is_file():
            return str(d / "wscat")
    return None


def wscat_json(line: str):
    """A message wscat printed (with or without its `< `), else None."""
    line = line.strip()
    if line.startswith("< "):
        line = line[2:]
    try:
        return json.loads(line)
    except ValueError:
        return None


def test_wscat_over_wss_receives_confirmation_and_published_event(eventhub, certs):
    wscat = find_wscat()
    if wscat is None:
        message = "wscat not found on PATH, in node_modules/.bin or target/node/node_modules/.bin (run scripts/setup.sh)"
        if os.environ.get("EVENTHUB_REQUIRE_WSCAT"):
            pytest.fail(message + ", and EVENTHUB_REQUIRE_WSCAT is set")
        pytest.skip(message + "; set EVENTHUB_REQUIRE_WSCAT=1 to make this a failure")
    hub = eventhub("serve", config=config(certs))
    # wscat quits when its stdin ends, so stdin stays an open pipe.
    child = subprocess.Popen(
        [
            wscat,
            "--ca",
            str(certs.ca),
            "-H",
            f"Authorization: Bearer {READER_TOKEN}",
            "-c",
            f"wss://localhost:{hub.tls_port}/v1/ws/subscribe?event_types=pdfm",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")},
    )
    lines: "queue.Queue[str | None]" = queue.Queue()
    stderr: "list[str]" = []

    def pump_out():
        for line in child.stdout:
            lines.put(line)
        lines.put(None)

    def pump_err():
        for line in child.stderr:
            stderr.append(line)

    pumps = [threading.Thread(target=pump_out, daemon=True), threading.Thread(target=pump_err, daemon=True)]
    for t in pumps:
        t.start()
    printed = []

    def next_message(what):
        while True:
            try:
                line = lines.get(timeout=TIMEOUT)
            except queue.Empty:
                pytest.fail(f"wscat printed no {what} within {TIMEOUT}s; stdout {printed}; stderr {''.join(stderr)!r}")
            if line is None:
                child.wait(timeout=TIMEOUT)
                pytest.fail(
                    f"wscat exited ({child.returncode}) before printing a {what}; stdout {printed}; stderr {''.join(stderr)!r}"
                )
            printed.append(line)
            message = wscat_json(line)
            if message is not None:
                return message

    try:
        assert_confirmation(next_message("confirmation"), ["global", "pdfm"])
        ctx = client_context(certs.ca)
        accepted = publish_https(hub, ctx, {"event_type": "pdfm", "message": "to-wscat", "body": {"n": 7}})
        got = next_message("published event")
        assert got["event_type"] == "pdfm", got
        assert got["message"] == "to-wscat", got
        assert got["body"] == {"n": 7}, got
        assert got["seq"] == accepted["events"][0]["seq"], got
    finally:
        child.stdin.close()
        try:
            child.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        for t in pumps:
            t.join(timeout=TIMEOUT)
        child.stdout.close()
        child.stderr.close()


# ---------------------------------------------------------------------------
# 8. Mutual TLS
# ---------------------------------------------------------------------------


def test_mutual_tls_required_refuses_no_cert_and_other_ca_and_admits_the_trusted_ca(
    eventhub, certs, dev_cert_factory
):
    # The client CA is a second dev-cert CA (its leaf carries no extended
    # key usage, which allows client authentication). The server's own dev
    # CA, of the same name but another key, is "another CA" here (rustls
    # answers its leaf with decrypt_error: the issuer found by name does not
    # verify the signature); a CA of another name, unknown_ca, is checked
    # with openssl-made certificates below.
    clients = dev_cert_factory("client-dev-cert")
    hub = eventhub("serve", config=config(certs, client_ca=clients.ca, client_cert_required=True))

    assert_tls_refused(hub, client_context(certs.ca), alert="CERTIFICATE_REQUIRED")
    assert_tls_refused(hub, client_context(certs.ca, identity=(certs.cert, certs.key)))
    assert_tls_refused(
        hub,
        client_context(certs.ca, maximum=ssl.TLSVersion.TLSv1_2, identity=(certs.cert, certs.key)),
    )

    admitted = client_context(certs.ca, identity=(clients.cert, clients.key))
    subscribe_and_receive_over_wss(hub, admitted, "mutual-tls")
    admitted12 = client_context(certs.ca, maximum=ssl.TLSVersion.TLSv1_2, identity=(clients.cert, clients.key))
    assert subscribe_and_receive_over_wss(hub, admitted12, "mutual-tls-12") == "TLSv1.2"


def openssl(*args, cwd):
    done = subprocess.run(
        ["openssl", *args], cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT
    )
    assert done.returncode == 0, f"openssl {' '.join(args)}: {done.stderr}"


def openssl_ca(d: pathlib.Path, name: str):
    openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN=eventhub test {name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=d,
    )  # fmt: skip
    return d / f"{name}.pem"


def openssl_leaf(d: pathlib.Path, ca: str, name: str, eku: str, serial: int):
    (d / f"{name}.ext").write_text(
        f"basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage={eku}\n"
    )
    openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
        cwd=d,
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
        "-set_serial", str(serial), "-days", "2", "-out", f"{name}.pem", "-extfile", f"{name}.ext",
        cwd=d,
    )  # fmt: skip
    return d / f"{name}.pem", d / f"{name}.key"


def test_mutual_tls_checks_the_client_certificate_extended_key_usage_and_issuer(eventhub, certs, tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("the openssl CLI is not installed (scripts/setup.sh installs it)")
    client_ca = openssl_ca(tmp_path, "client-ca")
    openssl_ca(tmp_path, "stranger-ca")
    good = openssl_leaf(tmp_path, "client-ca", "good-client", "clientAuth", 1)
    server_only = openssl_leaf(tmp_path, "client-ca", "server-only", "serverAuth", 2)
    stranger = openssl_leaf(tmp_path, "stranger-ca", "stranger", "clientAuth", 3)
    hub = eventhub("serve", config=config(certs, client_ca=client_ca, client_cert_required=True))

    assert_tls_refused(hub, client_context(certs.ca, identity=server_only))
    assert_tls_refused(hub, client_context(certs.ca, identity=stranger))
    subscribe_and_receive_over_wss(hub, client_context(certs.ca, identity=good), "eku-client-auth")


def test_mutual_tls_optional_admits_clients_without_a_certificate(eventhub, certs, dev_cert_factory):
    clients = dev_cert_factory("optional-client-dev-cert")
    hub = eventhub("serve", config=config(certs, client_ca=clients.ca, client_cert_required=False))
    subscribe_and_receive_over_wss(hub, client_context(certs.ca), "optional-without")
    subscribe_and_receive_over_wss(hub, client_context(certs.ca, identity=(clients.cert, clients.key)), "optional-with")
    # A certificate that is offered is still checked.
    assert_tls_refused(hub, client_context(certs.ca, identity=(certs.cert, certs.key)))
