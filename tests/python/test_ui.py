"""The web view (`GET /ui`) in a real browser: Debian's headless Chromium,
driven by Playwright, against the real `eventhub serve`.

Each test signs in through the page's own form, and checks what the page
shows against an independent source: the answers of `POST /v1/events`, a
Python `websockets` subscriber with the same filters, the Docker Engine
itself, or the hub's `/metrics`. The page's rows carry `data-seq` and
`data-channel`, the body's JSON is in `pre[data-json]`, the panel's figures
carry their raw numbers in `data-value`, and `#conn-state` says what the
tail's socket is (`data-state`, `data-subscriptions`, `data-extensions`).

A screenshot of the page with events and the panel is saved to
`target/ui-screenshot.png`.
"""

import base64
import contextlib
import hashlib
import http.server
import json
import os
import pathlib
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import types
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from conftest import ADMIN_TOKEN, PRINCIPALS, PRODUCER_TOKEN, READER_TOKEN, REPO, free_port, raw_http

TIMEOUT = 10.0
WORKERS = 2
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
CONFIG = (
    """
[hub]
max_connections_per_ip = 0
connect_rate_per_ip = 0.0
auth_failures_per_ip = 1000
"""
    + PRINCIPALS
    + """
[[principals]]
name = "keyed"
api_key = "keyed-api-key-0123456789"
subscribe = ["pdfm"]
publish = ["pdfm"]
"""
)
API_KEY = "keyed-api-key-0123456789"
SCREENSHOT = REPO / "target" / "ui-screenshot.png"
DOCKER_IMAGE = "eventhub-test/busybox"
DOCKER_SOCKET = "/var/run/docker.sock"

# Records every CSP violation the page reports, before any of its scripts
# run (an init script is the browser's, not the page's: its CSP does not
# apply to it).
CSP_WATCH = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI);
});
"""


# ---------------------------------------------------------------------------
# The hub, over HTTP
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hub(eventhub):
    return eventhub("serve", workers=WORKERS, config=CONFIG)


def http_json(hub, method, path, token=None, body=None, headers=None):
    """(status, headers, parsed JSON body) of a request to the hub."""
    h = dict(headers or {})
    if token:
        h["Authorization"] = f"Bearer {token}"
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(hub.http_base + path, data=data, headers=h, method=method)
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
            raw = resp.read()
            return resp.status, resp.headers, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = raw.decode(errors="replace")
        return e.code, e.headers, parsed


def publish(hub, events, token=PRODUCER_TOKEN):
    status, _, body = http_json(hub, "POST", "/v1/events", token, events)
    assert status == 202, body
    return body


def ticket(hub, token=ADMIN_TOKEN):
    status, _, body = http_json(hub, "POST", "/v1/tickets", token, b"")
    assert status == 201, body
    return body


def metrics(hub):
    """`/metrics` as {(name, frozenset(labels)): value}."""
    req = urllib.request.Request(hub.http_base + "/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
        text = resp.read().decode()
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, value = line.rsplit(" ", 1)
        name, labels = series, {}
        if "{" in series:
            name, rest = series.split("{", 1)
            for part in rest.rstrip("}").split(","):
                if part:
                    k, v = part.split("=", 1)
                    labels[k] = v.strip('"')
        out[(name, frozenset(labels.items()))] = float(value)
    return out


def metric_sum(m, name, **labels):
    want = set(labels.items())
    return sum(v for (n, ls), v in m.items() if n == name and want <= set(ls))


def wait_until(what, check, timeout=TIMEOUT, every=0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(every)


@contextlib.contextmanager
def subscriber(hub, event_types, token=ADMIN_TOKEN, compression=None):
    """A plain Python subscriber (no compression unless asked), past its
    confirmation."""
    with connect(
        hub.ws_base + "/v1/ws/subscribe?event_types=" + ",".join(event_types),
        additional_headers={"Authorization": f"Bearer {token}"},
        open_timeout=TIMEOUT,
        compression=compression,
        max_size=None,
    ) as c:
        hello = json.loads(c.recv(timeout=TIMEOUT))
        assert hello["event_type"] == "global", hello
        yield c


def read_until(c, done, timeout=TIMEOUT):
    """Messages with a seq from `c` until `done(events)`."""
    got = []
    deadline = time.monotonic() + timeout
    while not done(got):
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"subscriber got {len(got)} events before the timeout")
        m = json.loads(c.recv(timeout=left))
        if "seq" in m:
            got.append(m)
    return got


# ---------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------


UI_DIR = REPO / "src" / "api" / "ui"
UI_FILES = {"/ui": "index.html", "/ui/app.js": "app.js", "/ui/app.css": "app.css"}


def _from_disk(route):
    """With EVENTHUB_UI_FROM_DISK=1 (for working on the page without a
    rebuild), the page's files come from src/api/ui/ instead of the binary,
    under the hub's own answer's headers (its CSP included)."""
    path = urllib.parse.urlsplit(route.request.url).path
    if path not in UI_FILES:
        return route.continue_()
    answer = route.fetch()
    route.fulfill(response=answer, body=(UI_DIR / UI_FILES[path]).read_text())


class UiPage:
    """One browser context on the hub's `/ui`, collecting console errors,
    page errors, CSP violations, and every URL the page asked for."""

    def __init__(self, chromium, hub, **context_args):
        self.hub = hub
        context_args.setdefault("viewport", {"width": 1500, "height": 1000})
        self.context = chromium.new_context(**context_args)
        self.context.add_init_script(CSP_WATCH)
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT * 1000)
        self.errors = []
        self.requests = []
        self.websockets = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(f"console: {m.text}"))
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("websocket", lambda ws: self.websockets.append(ws.url))
        self.response = None
        if os.environ.get("EVENTHUB_UI_FROM_DISK"):
            self.context.route(f"{hub.http_base}/ui**", _from_disk)

    def open(self):
        self.response = self.page.goto(self.hub.http_base + "/ui")
        assert self.response.status == 200
        self.page.wait_for_selector("body[data-ready=true]")
        return self

    def sign_in(self, token=ADMIN_TOKEN, wait=True, kind="token"):
        self.page.check("#kind-api-key" if kind == "api_key" else "#kind-token")
        self.page.fill("#token", token)
        self.page.click("#signin-btn")
        if wait:
            self.wait_subscribed()
        return self

    def wait_subscribed(self, channels=None):
        """Until the tail's socket is open and confirmed (with exactly
        `channels` besides global, if given)."""
        want = None if channels is None else ",".join(sorted(set(channels) | {"global"}))
        self.page.wait_for_function(
            """(want) => {
                const s = document.getElementById('conn-state');
                return s.dataset.state === 'open' && s.dataset.subscriptions !== undefined
                    && (want === null || s.dataset.subscriptions === want);
            }""",
            arg=want,
        )

    def choose_channels(self, channels):
        """Ticks exactly `channels` (global stays), as a person would."""
        for box in self.page.query_selector_all("#channels input[data-channel]"):
            name = box.get_attribute("data-channel")
            if name == "global":
                continue
            if box.is_checked() != (name in channels):
                box.click()
        self.wait_subscribed(channels)

    def _rows(self):
        return self.page.evaluate(
            """() => [...document.querySelectorAll('#tail-body tr.event')].map((tr) => {
                const pre = tr.querySelector('pre');
                return {
                    seq: tr.dataset.seq === undefined ? null : Number(tr.dataset.seq),
                    channel: tr.dataset.channel,
                    message: tr.querySelector('td.message').textContent,
                    body: pre ? pre.dataset.json : null,  // parsed in Python: exact numbers
                    docker_id: tr.dataset.dockerId || null,
                    action: tr.dataset.action || null,
                    name: tr.dataset.name || null,
                };
            })"""
        )

    def rows(self):
        rows = self._rows()
        for r in rows:
            if r["body"] is not None:
                r["body"] = json.loads(r["body"])
        return rows

    def bands(self):
        return self.page.evaluate(
            "() => [...document.querySelectorAll('#tail-body tr.band:not(.info)')].map((tr) => tr.textContent)"
        )

    def wait_rows(self, what, check, timeout=TIMEOUT):
        return wait_until(what, lambda: check(self.rows()) and self.rows(), timeout=timeout, every=0.1)

    def data(self, selector, key="value"):
        return self.page.eval_on_selector(selector, f"(e) => e.dataset[{json.dumps(key)}]")

    def csp_violations(self):
        return self.page.evaluate("() => window.__cspViolations")

    def close(self):
        self.context.close()


@pytest.fixture
def ui(chromium, hub):
    """`make()` opens a page on the hub; all are closed after the test."""
    pages = []

    def make(**kwargs):
        pages.append(UiPage(chromium, kwargs.pop("on", hub), **kwargs))
        return pages[-1]

    yield make
    for p in pages:
        p.close()


def events_of(rows, marker):
    return [r for r in rows if isinstance(r["body"], dict) and r["body"].get("marker") == marker]


def batch(channel, n, marker, **extra):
    return [
        {"event_type": channel, "message": f"{channel.upper()}_{i:03d}", "body": {"marker": marker, "i": i, **extra}}
        for i in range(n)
    ]


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------


def test_the_page_loads_with_no_console_errors_and_only_its_own_files(ui, hub):
    p = ui().open()
    headers = p.response.headers
    assert headers["content-security-policy"] == CSP
    assert headers["x-frame-options"] == "DENY"
    p.sign_in()
    marker = uuid.uuid4().hex
    publish(hub, batch("pdfm", 5, marker))
    p.wait_rows("5 rows", lambda rows: len(events_of(rows, marker)) == 5)
    # Two panel refreshes: the stats endpoint answers and the charts draw.
    updated = lambda: int(p.data("#panel-updated", "timeMs") or 0)
    first = wait_until("a panel refresh", updated)
    wait_until("a second panel refresh", lambda: updated() > first)
    assert p.errors == []
    assert p.csp_violations() == []
    origin = hub.http_base
    ws_origin = hub.ws_base
    assert all(u.startswith(origin + "/") or u.startswith("data:") for u in p.requests), p.requests
    assert p.websockets and all(u.startswith(ws_origin + "/") for u in p.websockets), p.websockets


def test_the_token_is_not_kept_in_urls_storage_window_or_the_dom(ui, hub):
    p = ui().open().sign_in()
    time.sleep(1.2)  # a panel refresh or two
    for url in p.requests + p.websockets:
        assert ADMIN_TOKEN not in urllib.parse.unquote(url), url
        assert "access_token" not in url, url
    assert all("ticket=" in u for u in p.websockets), p.websockets
    leaked = p.page.evaluate(
        """(token) => {
            const found = [];
            if (document.documentElement.outerHTML.includes(token)) found.push('DOM');
            if (document.getElementById('token').value) found.push('input');
            for (const store of [localStorage, sessionStorage]) {
                for (let i = 0; i < store.length; i++) {
                    if ((store.getItem(store.key(i)) || '').includes(token)) found.push('storage');
                }
            }
            if (document.cookie.includes(token)) found.push('cookie');
            for (const k of Object.getOwnPropertyNames(window)) {
                let v;
                try { v = window[k]; } catch (_) { continue; }
                if (typeof v === 'string' && v.includes(token)) found.push('window.' + k);
                if (v && typeof v === 'object' && !(v instanceof Node) && v !== window) {
                    try { if (JSON.stringify(v).includes(token)) found.push('window.' + k); } catch (_) {}
                }
            }
            return found;
        }""",
        ADMIN_TOKEN,
    )
    assert leaked == []


def test_the_pages_csp_blocks_an_inline_script_and_the_test_sees_it(ui, hub):
    """The check above is not vacuous: an inline script is refused, and
    the refusal is reported."""
    p = ui().open()
    ran = p.page.evaluate(
        """() => {
            const s = document.createElement('script');
            s.textContent = 'window.__inlineRan = true;';
            document.body.append(s);
            return window.__inlineRan === true;
        }"""
    )
    assert not ran
    wait_until("a CSP violation", lambda: p.csp_violations())
    assert any(v.startswith("script-src") for v in p.csp_violations()), p.csp_violations()


def test_sign_in_with_a_bad_token_shows_the_hubs_401_message(ui, hub):
    status, _, answer = http_json(hub, "POST", "/v1/tickets", "not-a-token-at-all", b"")
    assert status == 401, answer
    assert answer["error"] == "invalid_credentials"
    p = ui().open().sign_in("not-a-token-either", wait=False)
    p.page.wait_for_selector("#signin-error:not([hidden])")
    assert p.page.inner_text("#signin-error") == answer["message"]
    assert p.data("#signin-error", "status") == "401"
    assert p.data("#signin-error", "error") == "invalid_credentials"
    assert p.page.is_hidden("#app")
    # The hub's wrong-token answer is the only error the console shows.
    assert all("401" in e for e in p.errors), p.errors


def test_an_api_key_signs_in_as_x_api_key_and_is_refused_as_a_token(ui, hub):
    # The hub keeps tokens and API keys apart: as a Bearer token the key is
    # unknown, and the page shows the hub's own refusal.
    status, _, answer = http_json(hub, "POST", "/v1/tickets", API_KEY, b"")
    assert status == 401, answer
    p = ui().open().sign_in(API_KEY, wait=False, kind="token")
    p.page.wait_for_selector("#signin-error:not([hidden])")
    assert p.page.inner_text("#signin-error") == answer["message"]
    assert p.page.is_hidden("#app")
    # As an API key it is the "keyed" principal, with its rights only.
    p.sign_in(API_KEY, wait=False, kind="api_key")
    p.wait_subscribed(["pdfm"])
    assert p.page.inner_text("#who") == "keyed"
    boxes = sorted(b.get_attribute("data-channel") for b in p.page.query_selector_all("#channels input[data-channel]"))
    assert boxes == ["global", "pdfm"]
    # Its events arrive, published with the same key by another client.
    marker = uuid.uuid4().hex
    status, _, body = http_json(hub, "POST", "/v1/events", body=batch("pdfm", 3, marker), headers={"X-Api-Key": API_KEY})
    assert status == 202, body
    rows = p.wait_rows("the keyed events", lambda rows: len(events_of(rows, marker)) == 3)
    assert [r["seq"] for r in events_of(rows, marker)] == [e["seq"] for e in body["events"]]
    # The key went in a header only: never in a URL the page asked for.
    for url in p.requests + p.websockets:
        assert API_KEY not in urllib.parse.unquote(url), url


def test_fifty_events_published_over_http_appear_in_seq_order(ui, hub):
    p = ui().open().sign_in()
    marker = uuid.uuid4().hex
    sent = batch("pdfm", 50, marker, vm_id="fb83295e-0ccb-46b1-8205-b03997f82b00")
    accepted = publish(hub, sent)
    rows = p.wait_rows("50 rows", lambda rows: len(events_of(rows, marker)) == 50)
    mine = events_of(rows, marker)
    assert [r["seq"] for r in mine] == [e["seq"] for e in accepted["events"]]
    assert [r["message"] for r in mine] == [e["message"] for e in sent]
    assert [r["body"] for r in mine] == [e["body"] for e in sent]
    assert all(r["channel"] == "pdfm" for r in mine)
    seqs = [r["seq"] for r in rows]
    assert seqs == sorted(set(seqs)), "rows out of seq order or doubled"
    assert p.data("#duplicates") == "0"


def test_bodies_are_shown_exactly_as_published(ui, hub):
    p = ui().open().sign_in()
    marker = uuid.uuid4().hex
    body = {"marker": marker, "big": 1796159406371380217, "text": 'a "quoted", {braced} [list] \\ back',
            "empty": {}, "list": [], "nested": {"x": [1, 2.5, -3e-7, True, None]}, "unicode": "h\u00e9 \u2603"}
    publish(hub, [{"event_type": "pdfm", "message": "EXACT", "body": body}])
    rows = p.wait_rows("the row", lambda rows: events_of(rows, marker))
    assert events_of(rows, marker)[0]["body"] == body
    shown = p.page.text_content("#tail-body tr.event:last-child pre")
    assert json.loads(shown) == body
    assert "1796159406371380217" in shown


def test_a_channel_filter_shows_exactly_the_matching_events(ui, hub):
    p = ui().open().sign_in()
    p.choose_channels(["orchestrator"])
    marker = uuid.uuid4().hex
    mixed = (
        batch("pdfm", 10, marker)
        + batch("orchestrator", 10, marker)
        + batch("global", 4, marker)
        + batch("container", 3, marker, Type="container")
    )
    # container events must be Docker-shaped; publish them as such.
    for i, e in enumerate(mixed):
        if e["event_type"] == "container":
            cid = f"{i:064x}"
            e["body"] = {
                "id": cid, "Type": "container", "Action": "start", "time": int(time.time()),
                "Actor": {"ID": cid, "Attributes": {"name": f"c{i}", "image": "busybox", "marker": marker}},
            }
    with subscriber(hub, ["orchestrator"], token=READER_TOKEN) as py:
        # Only the page and this client (earlier tests' pages are gone).
        wait_until("two subscribers", lambda: metric_sum(metrics(hub), "eventhub_connections") == 2)
        before = metrics(hub)
        accepted = publish(hub, mixed)
        want = read_until(py, lambda got: len(got) >= 14)
    time.sleep(0.3)  # anything extra would have arrived by now
    rows = p.wait_rows("14 rows", lambda rows: len(events_of(rows, marker)) >= 14)
    mine = events_of(rows, marker)
    assert [(r["seq"], r["channel"], r["message"], r["body"]) for r in mine] == [
        (e["seq"], e["event_type"], e["message"], e["body"]) for e in want if e["body"].get("marker") == marker
    ]
    assert {r["channel"] for r in mine} == {"orchestrator", "global"}
    seq_of = {e["seq"]: m["event_type"] for e, m in zip(accepted["events"], mixed)}
    assert [r["seq"] for r in mine] == sorted(s for s, ch in seq_of.items() if ch in ("orchestrator", "global"))
    # The hub's own count: 14 deliveries to each of the two subscribers.
    after = metrics(hub)
    assert metric_sum(after, "eventhub_deliveries_total") - metric_sum(before, "eventhub_deliveries_total") == 28


def test_pause_buffers_and_resume_shows_and_clear_empties(ui, hub):
    p = ui().open().sign_in()
    p.choose_channels(["pdfm"])
    p.page.click("#pause")
    marker = uuid.uuid4().hex
    publish(hub, batch("pdfm", 7, marker))
    wait_until("7 buffered", lambda: p.data("#buffered") == "7")
    assert events_of(p.rows(), marker) == []
    p.page.click("#resume")
    p.wait_rows("7 rows", lambda rows: len(events_of(rows, marker)) == 7)
    p.page.click("#clear")
    assert p.rows() == []
    assert p.data("#shown-count") == "0"


def test_rows_are_bounded_and_the_newest_kept(ui, hub):
    p = ui().open().sign_in()
    p.choose_channels(["pdfm"])
    marker = uuid.uuid4().hex
    accepted = []
    for start in range(0, 1500, 500):
        accepted += publish(hub, batch("pdfm", 500, marker, start=start))["events"]
    last = accepted[-1]["seq"]
    rows = p.wait_rows("the newest event", lambda rows: rows and rows[-1]["seq"] == last, timeout=20)
    assert len(p.page.query_selector_all("#tail-body tr")) <= 1000
    mine = events_of(rows, marker)
    assert [r["seq"] for r in mine] == [e["seq"] for e in accepted][-len(mine):]
    assert len(mine) >= 990


def test_killing_the_socket_resumes_with_no_duplicates_and_no_gaps(ui, hub):
    if shutil.which("ss") is None or os.geteuid() != 0:
        pytest.skip("needs root and ss (iproute2) to kill the socket")
    p = ui().open().sign_in()
    p.choose_channels(["pdfm"])
    marker = uuid.uuid4().hex
    accepted = publish(hub, batch("pdfm", 20, marker, part=1))["events"]
    p.wait_rows("20 rows", lambda rows: len(events_of(rows, marker)) == 20)
    assert p.data("#reconnects") == "0"
    # The hub's side of every connection the browser holds to it (its
    # socket, and any kept-alive fetch): destroyed, the browser gets a RST.
    killed = subprocess.run(
        ["ss", "-K", "-tn", "state", "established", f"( sport = :{hub.port} )"],
        capture_output=True, text=True, timeout=TIMEOUT,
    )
    assert killed.returncode == 0, killed.stderr
    assert f":{hub.port}" in killed.stdout, killed.stdout
    # While the page reconnects (its backoff is 150 ms at least).
    accepted += publish(hub, batch("pdfm", 20, marker, part=2))["events"]
    wait_until("a reconnect", lambda: int(p.data("#reconnects")) >= 1)
    p.wait_subscribed(["pdfm"])
    accepted += publish(hub, batch("pdfm", 20, marker, part=3))["events"]
    rows = p.wait_rows("60 rows", lambda rows: len(events_of(rows, marker)) >= 60)
    time.sleep(0.3)
    mine = events_of(p.rows(), marker)
    assert [r["seq"] for r in mine] == [e["seq"] for e in accepted]
    assert p.data("#duplicates") == "0", "the hub sent a seq twice"
    assert p.bands() == []
    # The page resumed with since and the epoch, each time with a new ticket.
    resumed = [u for u in p.websockets if "since=" in u]
    assert resumed and all("epoch=" in u for u in resumed), p.websockets
    tickets = [urllib.parse.parse_qs(urllib.parse.urlsplit(u).query)["ticket"][0] for u in p.websockets]
    assert len(tickets) == len(set(tickets))


def test_a_replay_gap_is_shown_as_a_band(ui, eventhub):
    small = eventhub("serve", workers=WORKERS, config=CONFIG.replace("[hub]\n", "[hub]\nreplay_size = 16\n"))
    if shutil.which("ss") is None or os.geteuid() != 0:
        pytest.skip("needs root and ss (iproute2) to kill the socket")
    p = ui(on=small).open().sign_in()
    p.choose_channels(["pdfm"])
    marker = uuid.uuid4().hex
    publish(small, batch("pdfm", 3, marker))
    p.wait_rows("3 rows", lambda rows: len(events_of(rows, marker)) == 3)
    # The page's socket is killed, and 40 events pass through the ring of
    # 16 before it is back (its backoff is 150 ms at least).
    subprocess.run(["ss", "-K", "-tn", "state", "established", f"( sport = :{small.port} )"],
                   capture_output=True, timeout=TIMEOUT)
    accepted = publish(small, batch("pdfm", 40, marker, late=True))["events"]
    wait_until("a band", lambda: p.bands(), timeout=15)
    band = p.page.query_selector("#tail-body tr.band:not(.info)")
    assert int(band.get_attribute("data-missed-from")) >= 1
    assert int(band.get_attribute("data-missed-to")) < accepted[-1]["seq"]
    rows = p.wait_rows("the newest event", lambda rows: rows and rows[-1]["seq"] == accepted[-1]["seq"])
    seqs = [r["seq"] for r in rows]
    assert seqs == sorted(set(seqs))


def test_the_per_core_panel_matches_metrics(ui, hub):
    p = ui().open().sign_in()
    with subscriber(hub, ["pdfm"]) as a, subscriber(hub, ["pdfm", "orchestrator"], compression="deflate") as b:
        marker = uuid.uuid4().hex
        publish(hub, batch("pdfm", 30, marker))
        read_until(a, lambda got: len(got) >= 30)
        read_until(b, lambda got: len(got) >= 30)
        wait_until("three subscribers", lambda: metric_sum(metrics(hub), "eventhub_connections") == 3)
        p.wait_rows("30 rows", lambda rows: len(events_of(rows, marker)) == 30)
        time.sleep(0.3)
        before = metrics(hub)
        t0 = int(time.time() * 1000)
        wait_until("a panel refresh", lambda: int(p.data("#panel-updated", "timeMs") or 0) > t0 + 50)
        shown = p.page.evaluate(
            """() => Object.fromEntries([...document.querySelectorAll('#cores-body tr[data-core]')].map((tr) =>
                [tr.dataset.core, Object.fromEntries([...tr.querySelectorAll('td[data-field]')].map((td) =>
                    [td.dataset.field, td.dataset.value]))]))"""
        )
        after = metrics(hub)
        summary = {k: p.data(f"#{k}") for k in ("hub-seq", "hub-docker")}
        ring_events = p.data("#hub-ring", "events")
    assert sorted(shown) == [str(c) for c in range(WORKERS)], shown
    for core, fields in shown.items():
        def expect(name, **labels):
            a = metric_sum(before, name, core=core, **labels)
            b = metric_sum(after, name, core=core, **labels)
            assert a == b, f"{name} core {core} moved while it was read ({a} -> {b})"
            return a

        subscribers = expect("eventhub_connections", endpoint="subscribe") + expect("eventhub_connections", endpoint="events")
        assert float(fields["subscribers"]) == subscribers, (core, fields)
        assert float(fields["publishers"]) == expect("eventhub_connections", endpoint="publish")
        assert float(fields["deliveries"]) == expect("eventhub_deliveries_total")
        assert float(fields["queue_bytes"]) == expect("eventhub_queue_bytes")
        assert float(fields["slow_consumer_closes"]) == expect("eventhub_slow_consumer_closes_total")
        assert float(fields["handoffs"]) == expect("eventhub_connections_handed_off_total")
        assert float(fields["deflate_subscribers"]) == expect("eventhub_deflate_subscribers")
        # Open connections include the HTTP ones of the moment (the test's
        # own /metrics, the page's stats fetch): at least the subscribers.
        assert float(fields["connections"]) >= subscribers
        drivers = [dict(ls)["driver"] for (n, ls), v in after.items()
                   if n == "eventhub_core_driver" and dict(ls).get("core") == core and v == 1]
        assert drivers and fields["driver"] == drivers[0], (fields, drivers)
    total_subscribers = sum(float(f["subscribers"]) for f in shown.values())
    assert total_subscribers == 3  # the page and the two Python clients
    assert float(summary["hub-seq"]) == metric_sum(after, "eventhub_seq")
    assert float(ring_events) == metric_sum(after, "eventhub_ring_events")
    assert float(summary["hub-docker"]) == metric_sum(after, "eventhub_docker_source_connected")


@pytest.fixture
def nats_url(tmp_path):
    """A real nats-server with JetStream on a free loopback port and a
    store of its own; stopped after the test."""
    if not shutil.which("nats-server"):
        pytest.fail("nats-server not found: run scripts/setup.sh (apt-get install nats-server)")
    port = free_port()
    proc = subprocess.Popen(
        ["nats-server", "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(tmp_path / "js")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    ready = threading.Event()

    def watch():
        for line in proc.stderr:
            if "Server is ready" in line:
                ready.set()

    threading.Thread(target=watch, daemon=True).start()
    try:
        assert ready.wait(TIMEOUT), "nats-server did not say it is ready"
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=TIMEOUT)


def spki_sha256(cert):
    """The base64 SHA-256 of the first certificate's public key in `cert`
    (a PEM file), as Chromium's --ignore-certificate-errors-spki-list
    takes it."""
    done = subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-pubkey", "-noout"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    der = base64.b64decode("".join(line for line in done.stdout.splitlines() if not line.startswith("-----")))
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def test_over_https_on_a_cluster_the_cluster_tls_and_deflate_panels_match_metrics(chromium_launcher, eventhub, dev_cert_factory, nats_url):
    certs = dev_cert_factory("ui-tls")
    hub = eventhub(
        "serve",
        workers=WORKERS,
        config=CONFIG
        + f"""
[tls]
cert = "{certs.cert}"
key = "{certs.key}"
listen = "127.0.0.1:0"

[cluster]
nats_url = ["{nats_url}"]
""",
    )
    assert hub.plain_port is not None and hub.tls_port is not None, hub.first_line
    wait_until("the hub on NATS", lambda: metric_sum(metrics(hub), "eventhub_cluster_connected") == 1)
    # The page over https as `localhost` (the dev certificate's name), so
    # its tail is wss and, Chromium offering it, compressed. The browser
    # trusts the certificate by its key: Playwright's ignore_https_errors
    # would have Chromium abort each first handshake with an alert (a
    # counted failure) and try again.
    browser = chromium_launcher("--ignore-certificate-errors-spki-list=" + spki_sha256(certs.cert))
    # (With EVENTHUB_UI_FROM_DISK, Playwright itself fetches the page's
    # files to swap their bodies, and it trusts no SPKI flag.)
    from_disk = bool(os.environ.get("EVENTHUB_UI_FROM_DISK"))
    p = UiPage(browser, types.SimpleNamespace(http_base=hub.https_base), ignore_https_errors=from_disk)
    try:
        check_the_cluster_tls_and_deflate_panels(p, hub)
    finally:
        p.close()


def check_the_cluster_tls_and_deflate_panels(p, hub):
    p.open().sign_in()
    assert p.data("#conn-state", "extensions").startswith("permessage-deflate"), p.data("#conn-state", "extensions")
    marker = uuid.uuid4().hex
    accepted = publish(hub, batch("pdfm", 25, marker))["events"]
    rows = p.wait_rows("25 rows", lambda rows: len(events_of(rows, marker)) == 25)
    assert [r["seq"] for r in events_of(rows, marker)] == [e["seq"] for e in accepted]
    last = accepted[-1]["seq"]
    wait_until("the hub to consume its own publishes", lambda: metric_sum(metrics(hub), "eventhub_cluster_consumed_seq") == last)

    before = metrics(hub)
    t0 = int(time.time() * 1000)
    wait_until("a panel refresh", lambda: int(p.data("#panel-updated", "timeMs") or 0) > t0 + 50)
    shown = {
        k: p.data(f"#{k}")
        for k in (
            "cluster-connected", "cluster-stream", "cluster-consumed", "cluster-lag", "cluster-acks",
            "tls-handshakes", "tls-failures", "tls-expiry", "tls-reloads", "deflate-subscribers", "deflate-skipped",
        )
    }
    after = metrics(hub)
    assert all(p.page.is_visible(f"#{panel}") for panel in ("cluster-panel", "tls-panel", "deflate-panel"))

    def steady(name):
        a, b = metric_sum(before, name), metric_sum(after, name)
        assert a == b, f"{name} moved while it was read ({a} -> {b})"
        return a

    assert p.page.inner_text("#cluster-connected") == "connected"
    assert float(shown["cluster-connected"]) == steady("eventhub_cluster_connected") == 1
    assert float(shown["cluster-stream"]) == steady("eventhub_cluster_stream_last_seq") == last
    assert float(shown["cluster-consumed"]) == steady("eventhub_cluster_consumed_seq") == last
    assert float(shown["cluster-lag"]) == steady("eventhub_cluster_consumer_lag")
    assert float(shown["cluster-acks"]) == steady("eventhub_cluster_publish_acks_pending")
    # Handshakes: the page's own fetches may open connections meanwhile.
    handshakes = float(shown["tls-handshakes"])
    assert metric_sum(before, "eventhub_tls_handshakes_total") <= handshakes <= metric_sum(after, "eventhub_tls_handshakes_total")
    assert handshakes >= 2  # the page, its tail socket
    assert float(shown["tls-failures"]) == steady("eventhub_tls_handshake_failures_total") == 0
    assert float(shown["tls-reloads"]) == steady("eventhub_tls_reloads_total")
    assert abs(float(shown["tls-expiry"]) - metric_sum(after, "eventhub_tls_certificate_expiry_seconds")) <= 5
    assert float(shown["deflate-subscribers"]) == steady("eventhub_deflate_subscribers") == 1
    assert float(shown["deflate-skipped"]) == steady("eventhub_deflate_skipped_total")


def test_the_panel_draws_the_publish_rate(ui, hub):
    p = ui().open().sign_in()
    p.choose_channels(["pdfm"])
    marker = uuid.uuid4().hex
    seen = []
    deadline = time.monotonic() + 3.5
    while time.monotonic() < deadline:
        publish(hub, batch("pdfm", 20, marker))
        seen.append(float(p.data("#hub-publish-rate") or 0))
        time.sleep(0.2)
    assert max(seen) > 0, seen
    painted = p.page.evaluate(
        """() => {
            const c = document.getElementById('chart-publish');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
            return n;
        }"""
    )
    assert painted > 50


def test_the_browser_negotiates_permessage_deflate_and_gets_what_a_plain_client_gets(ui, hub):
    p = ui().open().sign_in()
    p.choose_channels(["pdfm"])
    assert "permessage-deflate" in p.data("#conn-state", "extensions")
    m = metrics(hub)
    assert metric_sum(m, "eventhub_deflate_subscribers") >= 1
    marker = uuid.uuid4().hex
    sent = [
        {
            "event_type": "pdfm",
            "message": "VM_STATE_CHANGED",
            "body": {"marker": marker, "i": i, "host": "hv-17.dc1.example.net",
                     "labels": {f"team-{k}": f"value-{i}-{k}" for k in range(5 + i % 20)}},
        }
        for i in range(40)
    ]
    with subscriber(hub, ["pdfm"], compression=None) as plain:
        before = metric_sum(metrics(hub), "eventhub_deflated_deliveries_total")
        publish(hub, sent)
        want = read_until(plain, lambda got: len([e for e in got if e["body"].get("marker") == marker]) >= 40)
    rows = p.wait_rows("40 rows", lambda rows: len(events_of(rows, marker)) == 40)
    assert [(r["seq"], r["channel"], r["message"], r["body"]) for r in events_of(rows, marker)] == [
        (e["seq"], e["event_type"], e["message"], e["body"]) for e in want if e["body"].get("marker") == marker
    ]
    # The page's 40 deliveries went out compressed (the plain client's not).
    assert metric_sum(metrics(hub), "eventhub_deflated_deliveries_total") - before >= 40


class _OtherSite(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"<!DOCTYPE html><title>another site</title><p>another site</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def other_site():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OtherSite)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


TRY_SOCKET = """async (url) => await new Promise((resolve) => {
    const ws = new WebSocket(url);
    ws.onopen = () => { resolve('open'); ws.close(); };
    ws.onclose = (e) => resolve('closed ' + e.code);
})"""


def test_a_page_from_another_origin_gets_403(ui, chromium, hub):
    def upgrade(origin, ticket_value):
        head = (
            f"GET /v1/ws/subscribe?event_types=pdfm&ticket={ticket_value} HTTP/1.1\r\n"
            f"Host: {hub.host}:{hub.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            + (f"Origin: {origin}\r\n" if origin else "")
            + "\r\n"
        )
        import socket

        with socket.create_connection((hub.host, hub.port), timeout=TIMEOUT) as s:
            s.sendall(head.encode())
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            head_bytes, _, rest = data.partition(b"\r\n\r\n")
            status = head_bytes.split(b"\r\n", 1)[0].decode()
            if " 101 " in status:
                return status, None
            length = 0
            for line in head_bytes.split(b"\r\n")[1:]:
                k, _, v = line.decode().partition(":")
                if k.strip().lower() == "content-length":
                    length = int(v.strip())
            while len(rest) < length:
                chunk = s.recv(4096)
                if not chunk:
                    break
                rest += chunk
            return status, json.loads(rest[:length]) if length else None

    refusals = lambda: metric_sum(metrics(hub), "eventhub_handshake_refusals_total", reason="origin")
    with other_site() as site:
        # In the browser: a page of that site opens a socket with a ticket
        # it somehow holds; the hub refuses the handshake (the browser only
        # says 1006).
        evil = ui()
        evil.page.goto(site + "/")
        before = refusals()
        url = f"{hub.ws_base}/v1/ws/subscribe?event_types=pdfm&ticket={ticket(hub)['ticket']}"
        assert evil.page.evaluate(TRY_SOCKET, url) == "closed 1006"
        assert refusals() == before + 1
        # What the browser was told, byte for byte.
        status, body = upgrade(site, ticket(hub)["ticket"])
        assert " 403 " in status, status
        assert body["error"] == "origin_not_allowed", body
        assert refusals() == before + 2
        # A data: page (its Origin is "null") fares no better: Chromium
        # itself keeps a page with no address from a loopback one (Local
        # Network Access), and the hub refuses "null" as any other.
        evil.page.goto("data:text/html,<title>data page</title>")
        url = f"{hub.ws_base}/v1/ws/subscribe?event_types=pdfm&ticket={ticket(hub)['ticket']}"
        assert evil.page.evaluate(TRY_SOCKET, url) == "closed 1006"
        status, body = upgrade("null", ticket(hub)["ticket"])
        assert " 403 " in status and body["error"] == "origin_not_allowed", (status, body)
        # The hub's own origin, and no Origin at all, are let in.
        assert " 101 " in upgrade(hub.http_base, ticket(hub)["ticket"])[0]
        assert " 101 " in upgrade(None, ticket(hub)["ticket"])[0]
        # So is the same socket from the hub's own page.
        own = ui().open()
        url = f"{hub.ws_base}/v1/ws/subscribe?event_types=pdfm&ticket={ticket(hub)['ticket']}"
        assert own.page.evaluate(TRY_SOCKET, url) == "open"


def test_a_ticket_works_once(ui, hub):
    issued = ticket(hub, READER_TOKEN)
    assert issued["expires_in_s"] == 30
    assert issued["principal"]["name"] == "reader"
    assert issued["principal"]["admin"] is False
    assert ADMIN_TOKEN not in issued["ticket"] and READER_TOKEN not in issued["ticket"]
    url = hub.ws_base + "/v1/ws/subscribe?event_types=pdfm&ticket=" + urllib.parse.quote(issued["ticket"])
    with connect(url, open_timeout=TIMEOUT) as c:
        hello = json.loads(c.recv(timeout=TIMEOUT))
        assert hello["event_type"] == "global"
    with pytest.raises(InvalidStatus) as refused:
        with connect(url, open_timeout=TIMEOUT):
            pass
    assert refused.value.response.status_code == 401
    # On another route too: a used ticket is gone for good.
    with pytest.raises(InvalidStatus) as refused:
        with connect(hub.ws_base + "/v1/ws/publish?ticket=" + urllib.parse.quote(issued["ticket"]), open_timeout=TIMEOUT):
            pass
    assert refused.value.response.status_code == 401


def test_a_reader_sees_only_its_channels_and_no_publish_form_or_panel(ui, hub):
    p = ui().open().sign_in(READER_TOKEN)
    boxes = sorted(b.get_attribute("data-channel") for b in p.page.query_selector_all("#channels input[data-channel]"))
    assert boxes == sorted(["global", "pdfm", "health", "orchestrator"])
    assert p.page.is_hidden("#publish")
    p.page.wait_for_selector("#panel-error:not([hidden])")
    status, _, answer = http_json(hub, "GET", "/v1/stats", READER_TOKEN)
    assert status == 403
    assert p.page.inner_text("#panel-error") == answer["message"]


def test_the_publish_form_publishes_and_shows_the_hubs_errors(ui, hub):
    p = ui().open().sign_in()
    p.choose_channels(["pdfm"])
    marker = uuid.uuid4().hex
    p.page.select_option("#pub-channel", "pdfm")
    p.page.fill("#pub-message", "FROM_THE_FORM")
    p.page.fill("#pub-body", json.dumps({"marker": marker}))
    p.page.click("#pub-send")
    wait_until("a 202", lambda: p.data("#pub-result", "status") == "202")
    rows = p.wait_rows("the row", lambda rows: events_of(rows, marker))
    assert events_of(rows, marker)[0]["message"] == "FROM_THE_FORM"
    # Bad JSON: the hub's own 400 and words.
    bad = '{"marker":'
    status, _, answer = http_json(hub, "POST", "/v1/events", ADMIN_TOKEN,
                                  ('{"event_type":"pdfm","message":"x","body":' + bad + "}").encode())
    assert status == 400
    p.page.fill("#pub-message", "x")
    p.page.fill("#pub-body", bad)
    p.page.click("#pub-send")
    wait_until("a 400", lambda: p.data("#pub-result", "status") == "400")
    assert answer["message"] in p.page.inner_text("#pub-result")
    assert p.data("#pub-result", "error") == answer["error"]


# ---------------------------------------------------------------------------
# Docker
# ---------------------------------------------------------------------------


def docker_ready() -> bool:
    ok = shutil.which("docker") is not None and subprocess.run(
        ["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True
    ).returncode == 0
    if not ok and os.environ.get("EVENTHUB_REQUIRE_DOCKER"):
        pytest.fail(f"EVENTHUB_REQUIRE_DOCKER is set but no Docker Engine answers at {DOCKER_SOCKET}")
    return ok


def ensure_image():
    """A one-binary busybox image (`docker import`), as tests/docker_events.rs
    makes it: no registry can be reached."""
    if subprocess.run(["docker", "image", "inspect", DOCKER_IMAGE], capture_output=True).returncode == 0:
        return
    busybox = next((b for b in ("/usr/bin/busybox", "/bin/busybox") if os.path.exists(b)), None)
    assert busybox, "busybox-static not installed (scripts/setup.sh)"
    with tempfile.TemporaryDirectory() as root:
        bin_dir = pathlib.Path(root, "bin")
        bin_dir.mkdir()
        shutil.copy(busybox, bin_dir / "busybox")
        for applet in ("sh", "sleep", "true"):
            (bin_dir / applet).symlink_to("busybox")
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(["docker", "import", "-", f"{DOCKER_IMAGE}:latest"], stdin=tar.stdout,
                                  capture_output=True)
        tar.stdout.close()
        assert tar.wait() == 0
        assert imported.returncode == 0, imported.stderr


def docker(*args):
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"docker {args}: {done.stderr}"
    return done.stdout.strip()


def test_a_docker_filter_with_a_real_container_start_and_stop_shows_exactly_the_matching_events(ui, eventhub):
    if not docker_ready():
        pytest.skip("no Docker Engine (set EVENTHUB_REQUIRE_DOCKER=1 to make this an error)")
    ensure_image()
    dhub = eventhub("serve", workers=WORKERS, config=CONFIG, args=["--docker-socket", DOCKER_SOCKET])
    wait_until("the Docker source", lambda: metric_sum(metrics(dhub), "eventhub_docker_source_connected") == 1)
    p = ui(on=dhub).open().sign_in()
    tag = uuid.uuid4().hex[:8]
    wanted, other = f"ui-web-{tag}", f"ui-db-{tag}"
    p.page.click("#mode-docker")
    p.page.fill("#f-container", wanted)
    p.page.fill("#f-label", f"ui-test={tag}")
    p.page.click("#docker-apply")
    wait_until("the page's /events/ws socket",
               lambda: metric_sum(metrics(dhub), "eventhub_connections", endpoint="events") == 1)
    assert p.data("#conn-state", "endpoint") == "events"
    filters = {"container": {wanted: True}, "label": {f"ui-test={tag}": True}}
    assert json.loads(p.page.inner_text("#docker-filter-json").removeprefix("filters=")) == filters
    py = connect(
        dhub.ws_base + "/events/ws?filters=" + urllib.parse.quote(json.dumps(filters)),
        additional_headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        open_timeout=TIMEOUT,
    ).__enter__()
    names = []
    try:
        wait_until("both /events/ws sockets",
                   lambda: metric_sum(metrics(dhub), "eventhub_connections", endpoint="events") == 2)
        before = metric_sum(metrics(dhub), "eventhub_docker_source_events_total")
        # The wanted one, another with the same label, and the wanted name's
        # label missing from a third (name differs: Docker names are unique).
        for name, label in ((wanted, f"ui-test={tag}"), (other, f"ui-test={tag}"), (f"{wanted}-x", "other=1")):
            names.append(name)
            docker("run", "--name", name, "--label", label, DOCKER_IMAGE, "true")
        wanted_id = docker("inspect", "--format", "{{.Id}}", wanted)
        engine = [json.loads(py.recv(timeout=TIMEOUT)) for _ in range(2)]
        wait_until("the hub saw all six", lambda: metric_sum(metrics(dhub), "eventhub_docker_source_events_total")
                   - before >= 6)
        rows = p.wait_rows("start and stop", lambda rows: len(rows) >= 2)
        time.sleep(0.5)  # a third would be here by now
        rows = p.rows()
    finally:
        py.close()
        for name in names:
            subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    assert [(e["id"], e["Action"]) for e in engine] == [(wanted_id, "start"), (wanted_id, "stop")]
    assert [(r["docker_id"], r["action"], r["name"]) for r in rows] == [
        (wanted_id, "start", wanted), (wanted_id, "stop", wanted)
    ]
    assert [r["body"] for r in rows] == engine
    assert all(r["channel"] == "container" for r in rows)


# ---------------------------------------------------------------------------
# For a person to look at
# ---------------------------------------------------------------------------


def test_a_screenshot_of_the_page_with_events_and_the_panel(ui, hub):
    p = ui(viewport={"width": 1600, "height": 1100}).open().sign_in()
    with subscriber(hub, ["pdfm", "orchestrator"]), subscriber(hub, ["pdfm"], compression="deflate"):
        # Eight seconds of traffic at a changing rate, for the charts.
        for round_ in range(16):
            publish(hub, [
                {"event_type": "pdfm", "message": "VM_STATE_CHANGED",
                 "body": {"previous_state": "suspended", "current_state": "resuming",
                          "vm_id": str(uuid.uuid4())}},
                {"event_type": "orchestrator", "message": "HOST_HEALTH_UPDATE",
                 "body": {"host_id": uuid.uuid4().hex * 2, "state": "healthy"}},
                {"event_type": "global", "message": "maintenance window at 02:00 UTC", "body": {"round": round_}},
            ] * (1 + round_ % 5))
            time.sleep(0.5)
        p.wait_rows("rows", lambda rows: len(rows) >= 90)
        p.page.click("#tail-body tr.event:nth-last-child(3) details summary")
        p.page.eval_on_selector("#tail-section .table-wrap", "(w) => { w.scrollTop = w.scrollHeight; }")
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        p.page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 10_000
