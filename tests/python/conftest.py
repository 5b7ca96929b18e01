"""Shared fixtures for the end-to-end checks: the real `eventhub` binary on
an ephemeral port, started once per test module and stopped with SIGTERM
(it must then exit 0).

The binary is `$EVENTHUB_BIN`, or `target/debug/eventhub` under the
repository root.

For wss (`test_tls.py`): the first stdout line may name a plain and a TLS
address (`http://A and https://B`, `ws://A and wss://B` for `echo`); an
`Eventhub` exposes both (`plain_port`, `tls_port`), and `make_dev_cert`
writes `eventhub dev-cert` files into a fresh directory.
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
import types

import pytest

TIMEOUT = 10.0

READER_TOKEN = "reader-token-0123456789"
PRODUCER_TOKEN = "producer-token-0123456789"
ADMIN_TOKEN = "admin-token-0123456789"
# The principals the hub tests (plain and wss) configure.
PRINCIPALS = """
[[principals]]
name = "reader"
token = "reader-token-0123456789"
subscribe = ["pdfm", "health", "orchestrator"]
publish = []

[[principals]]
name = "producer"
token = "producer-token-0123456789"
subscribe = []
publish = ["pdfm", "orchestrator", "global", "container"]

[[principals]]
name = "admin"
token = "admin-token-0123456789"
admin = true
subscribe = ["*"]
publish = ["*"]
"""
CONFIRMATION = "WebSocket connection established subscribed to global by default"
REPO = pathlib.Path(__file__).resolve().parents[2]
# The first stdout line of each subcommand, naming its addresses: one URL,
# or two joined by " and " (plain first, then TLS).
LISTENING = {
    "echo": re.compile(r"^eventhub echo listening on (\S+(?: and \S+)?) \((\d+) workers\)$"),
    "serve": re.compile(r"^eventhub listening on (\S+(?: and \S+)?) \((\d+) workers\)$"),
}
# The (plain, TLS) URL schemes each subcommand announces.
SCHEMES = {"echo": ("ws", "wss"), "serve": ("http", "https")}
ADDRESS = re.compile(r"^([a-z]+)://(\S+):(\d+)$")


def raw_http(host: str, port: int, request: str):
    """Sends `request` on a plain socket, reads until the server closes,
    and returns the status line, the headers (lower-case names) and the
    body."""
    import socket

    with socket.create_connection((host, port), timeout=TIMEOUT) as s:
        s.sendall(request.encode())
        response = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            response += chunk
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
    return lines[0], headers, body


def assert_delivered(got: dict, event: dict, accepted: dict) -> None:
    """`got` is `event` as the hub delivers it, with the seq and id its
    publish was answered with."""
    assert got["event_type"] == event["event_type"]
    assert got["message"] == event["message"]
    assert got["body"] == event["body"]
    assert got["seq"] == accepted["events"][0]["seq"]
    assert got["id"] == accepted["events"][0]["id"]


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def binary_path() -> str:
    path = os.environ.get("EVENTHUB_BIN", "target/debug/eventhub")
    if not os.path.isabs(path) and not os.path.exists(path):
        path = str(REPO / path)
    return path


class Eventhub:
    """`eventhub echo` or `eventhub serve` on an ephemeral port, with
    `config` (TOML text) in a temporary file if given, `args` added to the
    command line and `env` added to the environment; stopped with SIGTERM,
    then SIGKILL.

    `host`/`port`, `url`, `ws_base` and `http_base` name the first address
    announced (the plain one when there is one; the TLS one on a TLS-only
    hub, with wss/https schemes). `plain_host`/`plain_port` and
    `tls_host`/`tls_port` name each listener (`None` when absent);
    `wss_base`/`https_base` reach the TLS one as `localhost`, the name the
    development certificate carries. `first_line` is the announcement as
    printed."""

    def __init__(
        self,
        command: str,
        workers: int = 2,
        config: "str | None" = None,
        args: "list[str] | None" = None,
        env: "dict[str, str] | None" = None,
    ):
        self.config = None
        argv = [binary_path(), command, "--listen", "127.0.0.1:0", "--workers", str(workers)]
        if config is not None:
            self.config = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
            self.config.write(config)
            self.config.close()
            argv += ["--config", self.config.name]
        argv += list(args or [])
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env=None if env is None else {**os.environ, **env},
        )
        lines: "queue.Queue[str]" = queue.Queue()
        self.stdout_lines = lines

        def pump():
            for line in self.proc.stdout:
                lines.put(line)
            lines.put("")

        self._pump = threading.Thread(target=pump, daemon=True)
        self._pump.start()
        try:
            line = lines.get(timeout=TIMEOUT).rstrip("\n")
        except queue.Empty:
            self.stop()
            pytest.fail(f"eventhub did not announce its address within {TIMEOUT}s")
        self.first_line = line
        addresses = self._parse(command, line)
        if addresses is None:
            log = self.log_text()
            self.stop()
            pytest.fail(f"unexpected first stdout line: {line!r}; stderr:\n{log}")
        plain, tls = addresses
        self.plain_host, self.plain_port = plain if plain else (None, None)
        self.tls_host, self.tls_port = tls if tls else (None, None)
        ws, http = ("ws", "http") if plain else ("wss", "https")
        self.host, self.port = plain if plain else tls
        self.url = f"{ws}://{self.host}:{self.port}/"
        self.ws_base = f"{ws}://{self.host}:{self.port}"
        self.http_base = f"{http}://{self.host}:{self.port}"
        if self.tls_port is not None:
            self.wss_base = f"wss://localhost:{self.tls_port}"
            self.https_base = f"https://localhost:{self.tls_port}"
        else:
            self.wss_base = self.https_base = None

    @staticmethod
    def _parse(command: str, line: str):
        """(plain, tls) from the announcement, each `(host, port)` or
        `None`; `None` if the line is not an announcement."""
        m = LISTENING[command].match(line)
        if not m:
            return None
        plain_scheme, tls_scheme = SCHEMES[command]
        plain = tls = None
        for url in m.group(1).split(" and "):
            a = ADDRESS.match(url)
            if not a:
                return None
            addr = (a.group(2), int(a.group(3)))
            if a.group(1) == plain_scheme and plain is None:
                plain = addr
            elif a.group(1) == tls_scheme and tls is None:
                tls = addr
            else:
                return None
        return plain, tls

    def log_text(self) -> str:
        """What the process wrote to stderr so far."""
        if self.log.closed:
            return ""
        self.log.flush()
        self.log.seek(0)
        text = self.log.read().decode(errors="replace")
        self.log.seek(0, os.SEEK_END)
        return text

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # The pump ends at the pipe's EOF once the process has gone.
        self._pump.join(timeout=TIMEOUT)
        if not self._pump.is_alive():
            self.proc.stdout.close()
        if not self.log.closed:
            self.log.close()
        if self.config is not None and os.path.exists(self.config.name):
            os.unlink(self.config.name)
        return self.proc.returncode


@pytest.fixture(scope="module")
def eventhub():
    """Starts `Eventhub(...)` on call; at the end of the module stops each one
    and asserts it exited 0 after SIGTERM."""
    started = []

    def start(command: str, **kwargs) -> Eventhub:
        started.append(Eventhub(command, **kwargs))
        return started[-1]

    yield start
    for s in started:
        code = s.stop()
        assert code == 0, f"eventhub exited with {code} after SIGTERM"


def make_dev_cert(out: pathlib.Path) -> types.SimpleNamespace:
    """Runs `eventhub dev-cert --out OUT`; returns its files: `dir`, `ca`
    (the development CA), `cert` (the leaf for localhost, 127.0.0.1 and ::1,
    followed by the CA) and `key`."""
    done = subprocess.run(
        [binary_path(), "dev-cert", "--out", str(out)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, f"eventhub dev-cert failed: {done.stderr}"
    files = types.SimpleNamespace(dir=out, ca=out / "ca.pem", cert=out / "cert.pem", key=out / "key.pem")
    for path in (files.ca, files.cert, files.key):
        assert path.is_file(), f"eventhub dev-cert did not write {path}"
    return files


@pytest.fixture(scope="session")
def dev_cert_factory(tmp_path_factory):
    """`make(name)`: a fresh `eventhub dev-cert` directory (its own CA)."""

    def make(name: str) -> types.SimpleNamespace:
        return make_dev_cert(tmp_path_factory.mktemp(name))

    return make


# Debian's Chromium, driven by Playwright (`tests/python/test_ui.py`):
# `scripts/setup.sh` installs it with apt; Playwright never downloads a
# browser of its own here.
CHROMIUM = os.environ.get("EVENTHUB_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def chromium_launcher():
    """`launch(*args)`: a headless Chromium (Debian's, through Playwright)
    with extra command-line `args`; every one is closed at the end of the
    module. (Playwright's sync API holds an asyncio loop on this thread
    while it runs; module scope ends it before another module's tests
    run a loop of their own, as test_tls.py's do.)"""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} not found: run scripts/setup.sh (apt-get install chromium chromium-driver)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browsers = []

        def launch(*args):
            browsers.append(
                p.chromium.launch(
                    executable_path=CHROMIUM,
                    headless=True,
                    # Root on a CI box: no setuid sandbox; a small /dev/shm
                    # in containers.
                    args=["--no-sandbox", "--disable-dev-shm-usage"]
                    # A page whose files the test serves (EVENTHUB_UI_FROM_DISK
                    # in test_ui.py) has no address of its own: Chromium's
                    # local network checks would keep it from the hub on
                    # 127.0.0.1.
                    + (["--disable-features=LocalNetworkAccessChecks"] if os.environ.get("EVENTHUB_UI_FROM_DISK") else [])
                    + list(args),
                )
            )
            return browsers[-1]

        try:
            yield launch
        finally:
            for browser in browsers:
                browser.close()


@pytest.fixture(scope="module")
def chromium(chromium_launcher):
    """The module's headless Chromium."""
    return chromium_launcher()
