#!/usr/bin/env bash
# Installs and starts what the test suites need, idempotently:
#   - Debian packages: docker.io (the engine the Docker source follows),
#     busybox-static (the only binary of the test image), iproute2 (the
#     slow-link test's network namespace and traffic shaping), openssl,
#     nats-server (2.9, with JetStream: the cluster tests start their own),
#     chromium and chromium-driver (the web view's browser tests);
#   - a running dockerd (started here when none answers);
#   - npm's wscat (the Events Hub guide's client), under target/node;
#   - a Python virtualenv with the test clients, under target/py-venv.
# The Autobahn suite and cargo-fuzz are installed by their own scripts.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

need_apt=()
command -v dockerd >/dev/null || need_apt+=(docker.io)
[[ -x /usr/bin/busybox || -x /bin/busybox ]] || need_apt+=(busybox-static)
# iproute2: `ip netns` and `tc` for the slow-link test (tests/slow_link.rs).
command -v tc >/dev/null && command -v ip >/dev/null || need_apt+=(iproute2)
command -v openssl >/dev/null || need_apt+=(openssl)
# nats-server: the cluster's event log (tests/cluster.rs starts it).
command -v nats-server >/dev/null || need_apt+=(nats-server)
# chromium and chromium-driver: the web view's browser tests
# (tests/python/test_ui.py drive Debian's headless Chromium with Playwright,
# which must not download a browser of its own).
[[ -x /usr/bin/chromium ]] || need_apt+=(chromium)
[[ -x /usr/bin/chromedriver ]] || need_apt+=(chromium-driver)
if ((${#need_apt[@]} > 0)); then
    echo "setup: installing ${need_apt[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
    echo "setup: starting dockerd"
    $SUDO setsid --fork dockerd >target/dockerd.log 2>&1 </dev/null
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 0.5
    done
    docker info >/dev/null 2>&1 || { echo "setup: dockerd did not start; see target/dockerd.log" >&2; exit 1; }
fi

if [[ ! -x target/node/node_modules/.bin/wscat ]]; then
    echo "setup: installing wscat"
    mkdir -p target/node
    npm install --silent --no-save --no-audit --no-fund --prefix target/node wscat@6.1.0 >/dev/null
fi

if [[ ! -x target/py-venv/bin/python ]]; then
    python3 -m venv target/py-venv
fi
target/py-venv/bin/python -m pip install -q --disable-pip-version-check -r tests/python/requirements.txt
