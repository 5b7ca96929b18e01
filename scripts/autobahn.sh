#!/usr/bin/env bash
# Run the Autobahn|Testsuite fuzzingclient against `eventhub echo` and fail on
# any non-conformance.
#
# Usage: scripts/autobahn.sh PATH_TO_EVENTHUB_BINARY [CASES_JSON]
#
#   CASES_JSON      JSON list of case patterns, default '["*"]' (every case,
#                   permessage-deflate's 12.* and 13.* included).
#
# Environment:
#   AUTOBAHN_VENV        virtualenv holding the suite
#                        (default $HOME/.cache/eventhub/autobahn-venv)
#   AUTOBAHN_REPORT_DIR  report directory, relative to the repo root
#                        (default target/autobahn)
#   AUTOBAHN_TIMEOUT     seconds allowed for the whole fuzzingclient run (default 600)
#   AUTOBAHN_PY27        Python 2.7 interpreter (default ~/.pyenv/versions/2.7.18/bin/python)
#   AUTOBAHN_EXCLUDE     JSON list of case patterns left out (default '[]')
#   AUTOBAHN_TLS         1 = over wss: the echo server gets a development
#                        certificate (`eventhub dev-cert`) and the suite
#                        connects to wss://127.0.0.1:PORT
#
# The suite (PyPI autobahntestsuite 25.10.1) is Python 2 code; it is installed
# once into the venv and reused while `wstest --help` works there.

set -uo pipefail

die() {
    echo "autobahn.sh: error: $*" >&2
    exit 1
}

if [[ $# -lt 1 || $# -gt 2 ]]; then
    echo "usage: $0 PATH_TO_EVENTHUB_BINARY [CASES_JSON]" >&2
    exit 2
fi

BIN_ARG=$1
CASES=${2:-'["*"]'}

# Resolve the binary before changing directory.
[[ -f "$BIN_ARG" && -x "$BIN_ARG" ]] || die "binary '$BIN_ARG' does not exist or is not executable"
BIN=$(cd "$(dirname "$BIN_ARG")" && pwd)/$(basename "$BIN_ARG")

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
cd "$REPO_ROOT" || die "cannot cd to $REPO_ROOT"

command -v python3 >/dev/null || die "python3 not found"
command -v timeout >/dev/null || die "timeout (coreutils) not found"

# Validate CASES_JSON: must be a JSON list of strings.
python3 -c '
import json, sys
try:
    v = json.loads(sys.argv[1])
except ValueError as e:
    raise SystemExit("CASES_JSON is not valid JSON: %s" % e)
if not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v):
    raise SystemExit("CASES_JSON must be a non-empty JSON list of strings")
' "$CASES" || die "invalid CASES_JSON: $CASES"

VENV=${AUTOBAHN_VENV:-$HOME/.cache/eventhub/autobahn-venv}
PY27=${AUTOBAHN_PY27:-$HOME/.pyenv/versions/2.7.18/bin/python}
REPORT_DIR_REL=${AUTOBAHN_REPORT_DIR:-target/autobahn}
WSTEST_TIMEOUT=${AUTOBAHN_TIMEOUT:-600}

# ---------------------------------------------------------------------------
# 1. Install the suite (idempotent).
# ---------------------------------------------------------------------------
wstest_works() {
    [[ -x "$VENV/bin/wstest" ]] && "$VENV/bin/wstest" --help >/dev/null 2>&1
}

install_suite() {
    [[ -x "$PY27" ]] || die "Python 2.7 not found at $PY27 (expected pyenv's 2.7.18: ~/.pyenv/versions/2.7.18); the Autobahn testsuite needs Python 2.7"

    echo "autobahn.sh: installing autobahntestsuite 25.10.1 into $VENV" >&2
    local start=$SECONDS

    if ! "$PY27" -c 'import virtualenv' >/dev/null 2>&1; then
        "$PY27" -m pip install --disable-pip-version-check "virtualenv<20.22" \
            || die "installing virtualenv into $PY27 failed"
    fi

    # A venv that exists but has no working wstest is stale: rebuild it.
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    "$PY27" -m virtualenv "$VENV" >/dev/null || die "creating virtualenv $VENV failed"

    # autobahntestsuite 25.10.1 pins its direct dependencies exactly
    # (Twisted 19.10.0, pyOpenSSL 19.1.0, cryptography 3.3.2,
    # service-identity 18.1.0, autobahn 0.10.9, ...). The constraints below pin
    # the unpinned transitive ones to the last releases that work on Python
    # 2.7, so the install stays reproducible.
    local constraints="$VENV/autobahn-constraints.txt"
    cat >"$constraints" <<'EOF'
Automat==22.10.0
PyHamcrest==1.10.1
attrs==21.4.0
cffi==1.15.1
constantly==15.1.0
enum34==1.1.10
hyperlink==21.0.0
idna==2.10
ipaddress==1.0.23
pyasn1==0.5.1
pyasn1-modules==0.3.0
pycparser==2.21
typing==3.10.0.0
ujson==2.0.3
wsaccel==0.6.6
linecache2==1.0.0
traceback2==1.4.0
argparse==1.4.0
EOF
    "$VENV/bin/pip" install --disable-pip-version-check -c "$constraints" \
        "autobahntestsuite==25.10.1" \
        || die "pip install autobahntestsuite==25.10.1 failed"

    wstest_works || die "autobahntestsuite installed but '$VENV/bin/wstest --help' fails"
    echo "autobahn.sh: suite installed in $((SECONDS - start)) s" >&2
}

if wstest_works; then
    echo "autobahn.sh: using existing suite in $VENV" >&2
else
    install_suite
fi

# ---------------------------------------------------------------------------
# 2. Start `eventhub echo` on a free port.
# ---------------------------------------------------------------------------
mkdir -p "$REPORT_DIR_REL" || die "cannot create report dir $REPORT_DIR_REL"
REPORT_DIR=$(cd "$REPORT_DIR_REL" && pwd)
# Remove results of a previous run so a stale index.json can never pass.
rm -f "$REPORT_DIR/index.json" "$REPORT_DIR/index.html" "$REPORT_DIR"/eventhub_case_*.json "$REPORT_DIR"/eventhub_case_*.html

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()') \
    || die "could not pick a free port"
SERVER_LOG="$REPORT_DIR/server.log"
SPEC="$REPORT_DIR/spec.json"

SERVER_PID=""
stop_server() {
    [[ -n "$SERVER_PID" ]] || return 0
    local pid=$SERVER_PID
    SERVER_PID=""
    if ! kill -0 "$pid" 2>/dev/null; then
        wait "$pid" 2>/dev/null
        echo "autobahn.sh: echo server (pid $pid) had already exited with status $?" >&2
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null
    local i
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "autobahn.sh: echo server (pid $pid) did not exit within 5 s of SIGTERM; sending SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    echo "autobahn.sh: echo server (pid $pid) exited with status $? after SIGTERM" >&2
    return 0
}
trap stop_server EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

SCHEME=ws
ECHO_ARGS=(echo --listen "127.0.0.1:$PORT")
if [[ ${AUTOBAHN_TLS:-0} == 1 ]]; then
    SCHEME=wss
    "$BIN" dev-cert --out "$REPORT_DIR/tls" >/dev/null || die "eventhub dev-cert failed"
    printf '[tls]\ncert = "%s"\nkey = "%s"\n' "$REPORT_DIR/tls/cert.pem" "$REPORT_DIR/tls/key.pem" >"$REPORT_DIR/tls.toml"
    ECHO_ARGS+=(--config "$REPORT_DIR/tls.toml")
fi
echo "autobahn.sh: starting $BIN ${ECHO_ARGS[*]} (log: $SERVER_LOG)" >&2
"$BIN" "${ECHO_ARGS[@]}" >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!

ready=0
for ((i = 0; i < 100; i++)); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "autobahn.sh: echo server exited before accepting connections; log:" >&2
        tail -n 50 "$SERVER_LOG" >&2
        exit 1
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
        ready=1
        break
    fi
    sleep 0.1
done
if [[ $ready -ne 1 ]]; then
    echo "autobahn.sh: echo server did not accept connections on 127.0.0.1:$PORT within 10 s; log:" >&2
    tail -n 50 "$SERVER_LOG" >&2
    exit 1
fi

# ---------------------------------------------------------------------------
# 3. Run the fuzzingclient.
# ---------------------------------------------------------------------------
python3 - "$SPEC" "$REPORT_DIR" "$PORT" "$CASES" "$SCHEME" "${AUTOBAHN_EXCLUDE:-[]}" <<'EOF' || die "writing $SPEC failed"
import json, sys
spec_path, outdir, port, cases, scheme, exclude = sys.argv[1:7]
spec = {
    "outdir": outdir,
    "servers": [{"agent": "eventhub", "url": "%s://127.0.0.1:%s" % (scheme, port)}],
    "cases": json.loads(cases),
    "exclude-cases": json.loads(exclude),
    "exclude-agent-cases": {},
}
with open(spec_path, "w") as f:
    json.dump(spec, f, indent=2)
    f.write("\n")
EOF

echo "autobahn.sh: running fuzzingclient (cases $CASES, timeout ${WSTEST_TIMEOUT}s, reports in $REPORT_DIR)" >&2
WSTEST_LOG="$REPORT_DIR/wstest.log"
timeout --kill-after=10 "$WSTEST_TIMEOUT" "$VENV/bin/wstest" -m fuzzingclient -s "$SPEC" >"$WSTEST_LOG" 2>&1
wstest_rc=$?
if [[ $wstest_rc -ne 0 ]]; then
    if [[ $wstest_rc -eq 124 || $wstest_rc -eq 137 ]]; then
        echo "autobahn.sh: wstest timed out after ${WSTEST_TIMEOUT}s; last lines of $WSTEST_LOG:" >&2
    else
        echo "autobahn.sh: wstest exited with status $wstest_rc; last lines of $WSTEST_LOG:" >&2
    fi
    tail -n 30 "$WSTEST_LOG" >&2
fi

stop_server

# ---------------------------------------------------------------------------
# 4. Gate on the results.
# ---------------------------------------------------------------------------
python3 "$SCRIPT_DIR/autobahn_gate.py" "$REPORT_DIR/index.json"
gate_rc=$?
if [[ $gate_rc -ne 0 ]]; then
    exit "$gate_rc"
fi
if [[ $wstest_rc -ne 0 ]]; then
    echo "autobahn.sh: failing because wstest exited with status $wstest_rc" >&2
    exit 1
fi
exit 0
