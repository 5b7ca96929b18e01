"""Shared fixtures for the end-to-end checks: the real `eventhub` binary on
an ephemeral port, started once per test module and stopped with SIGTERM
(it must then exit 0).

The binary is `$EVENTHUB_BIN`, or `target/debug/eventhub` under the
repository root.
"""

import os
import pathlib
import queue
import re
import signal
import subprocess
import tempfile
import threading

import pytest

TIMEOUT = 10.0
REPO = pathlib.Path(__file__).resolve().parents[2]
# The first stdout line of each subcommand, naming its address.
LISTENING = {
    "echo": re.compile(r"^eventhub echo listening on ws://(\S+):(\d+) \((\d+) workers\)$"),
    "serve": re.compile(r"^eventhub listening on http://(\S+):(\d+) \((\d+) workers\)$"),
}


def binary_path() -> str:
    path = os.environ.get("EVENTHUB_BIN", "target/debug/eventhub")
    if not os.path.isabs(path) and not os.path.exists(path):
        path = str(REPO / path)
    return path


class Eventhub:
    """`eventhub echo` or `eventhub serve` on an ephemeral port, with
    `config` (TOML text) in a temporary file if given; stopped with SIGTERM,
    then SIGKILL."""

    def __init__(self, command: str, workers: int = 2, config: "str | None" = None):
        self.config = None
        args = [binary_path(), command, "--listen", "127.0.0.1:0", "--workers", str(workers)]
        if config is not None:
            self.config = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
            self.config.write(config)
            self.config.close()
            args += ["--config", self.config.name]
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            args,
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
        m = LISTENING[command].match(line)
        if not m:
            self.stop()
            pytest.fail(f"unexpected first stdout line: {line!r}")
        self.host, self.port = m.group(1), int(m.group(2))
        self.url = f"ws://{self.host}:{self.port}/"
        self.ws_base = f"ws://{self.host}:{self.port}"
        self.http_base = f"http://{self.host}:{self.port}"

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        if self.config is not None:
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
