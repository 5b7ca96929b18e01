#!/usr/bin/env bash
# A whole eventhub cluster on this machine, on loopback, for trying it:
# a 3-node NATS JetStream cluster (three nats-server processes with routes
# between them) and three hubs joined to it (replicas = 3), each hub with
# its own generated config. Everything lives in one directory (configs,
# JetStream stores, logs, pids); nothing is installed.
#
#   deploy/cluster/try-local.sh [start]   bring it up, wait until ready, print how to use it
#   deploy/cluster/try-local.sh status    what runs, and each hub's /healthz
#   deploy/cluster/try-local.sh stop      stop what start started
#   deploy/cluster/try-local.sh kill-nats N    SIGKILL NATS node N (1-3)
#   deploy/cluster/try-local.sh start-nats N   start it again, on its store
#
# Environment:
#   EVENTHUB_BIN      the hub binary (default target/release/eventhub,
#                     relative to the repository root; cargo build --release)
#   NATS_SERVER_BIN   nats-server (default: nats-server on PATH; 2.9+)
#   TRY_LOCAL_DIR     the directory (default ${TMPDIR:-/tmp}/eventhub-try-local-<uid>);
#                     start wipes it, stop leaves the logs there
#
# Ports (loopback): hubs 8081 8082 8083; NATS clients 14222-14224, routes
# 16222-16224, monitoring 18222-18224. Needs curl.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${EVENTHUB_BIN:-target/release/eventhub}
[[ $BIN == /* ]] || BIN=$ROOT/$BIN
NATS_BIN=${NATS_SERVER_BIN:-nats-server}
DIR=${TRY_LOCAL_DIR:-${TMPDIR:-/tmp}/eventhub-try-local-$(id -u)}

NODES=(1 2 3)
HUB_PORTS=(8081 8082 8083)
NATS_PORTS=(14222 14223 14224)
ROUTE_PORTS=(16222 16223 16224)
MON_PORTS=(18222 18223 18224)

# Demo secrets: fixed so that the printed commands work as they are. The
# cluster listens on loopback only.
TOKEN=try-local-demo-token-0123456789abcdef
NATS_USER=eventhub
NATS_PASS=try-local-nats-password
ROUTE_PASS=try-local-route-password

say() { printf '%s\n' "$*"; }
die() { printf 'try-local: %s\n' "$*" >&2; exit 1; }

# The pid in FILE if that process is alive and is one of ours (its command
# line names $DIR: every process started here is given a file in it).
live_pid() {
    local file=$1 pid
    [[ -f $file ]] || return 1
    pid=$(<"$file")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$DIR/" || return 1
    printf '%s\n' "$pid"
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Waits up to $3 seconds for URL $2 to answer 2xx, while pid file $1's
# process lives.
wait_http() {
    local pidfile=$1 url=$2 secs=$3 i
    for ((i = 0; i < secs * 10; i++)); do
        curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null && return 0
        live_pid "$pidfile" >/dev/null || return 2
        sleep 0.1
    done
    return 1
}

nats_urls() {
    local p out=""
    for p in "${NATS_PORTS[@]}"; do out+="\"nats://127.0.0.1:$p\", "; done
    printf '[%s]' "${out%, }"
}

write_nats_conf() {
    local n=$1 i=$(($1 - 1)) p routes=""
    for p in "${ROUTE_PORTS[@]}"; do
        routes+="    nats-route://route:$ROUTE_PASS@127.0.0.1:$p"$'\n'
    done
    mkdir -p "$DIR/nats-$n"
    cat >"$DIR/nats-$n.conf" <<EOF
# try-local.sh: NATS node $n of 3 (see deploy/cluster/nats-server.conf).
server_name: "nats-$n"
listen: 127.0.0.1:${NATS_PORTS[i]}
http: 127.0.0.1:${MON_PORTS[i]}
max_payload: 2MB
authorization {
  users: [ { user: "$NATS_USER", password: "$NATS_PASS" } ]
}
jetstream {
  store_dir: "$DIR/nats-$n"
  max_memory_store: 64MB
  max_file_store: 1GB
}
cluster {
  name: "try-local"
  listen: 127.0.0.1:${ROUTE_PORTS[i]}
  authorization { user: "route", password: "$ROUTE_PASS", timeout: 2 }
  # All three, this node included (a route to itself is dropped).
  routes: [
$routes  ]
}
EOF
}

write_hub_conf() {
    local n=$1 i=$(($1 - 1))
    cat >"$DIR/hub-$n.toml" <<EOF
# try-local.sh: hub $n of 3 (see deploy/cluster/hub.toml).
[server]
listen = "127.0.0.1:${HUB_PORTS[i]}"
workers = 2
pin_workers = false
log = "info"

[hub]
# Several subscribers from 127.0.0.1 on one hub.
max_connections_per_ip = 0

[cluster]
nats_url = $(nats_urls)
replicas = 3
storage = "file"
connect_timeout_s = 5
user = "$NATS_USER"
password = "$NATS_PASS"

[[principals]]
name = "demo"
token = "$TOKEN"
subscribe = ["*"]
publish = ["*"]
admin = true
EOF
}

start_nats() {
    spawn "$DIR/nats-$1.pid" "$DIR/nats-$1.log" "$NATS_BIN" -c "$DIR/nats-$1.conf"
}

# Starts a process detached from this terminal (its own session), its
# output in LOG, its pid in PIDFILE.
spawn() {
    local pidfile=$1 log=$2
    shift 2
    setsid "$@" </dev/null >>"$log" 2>&1 &
    printf '%s\n' "$!" >"$pidfile"
}

tail_log() { say "--- last lines of $1:" >&2; tail -n 20 "$1" >&2 || true; }

# Start failed: say why, stop what was started, exit 1.
fail() {
    say "try-local: $*; stopping what was started" >&2
    stop >&2
    exit 1
}

start() {
    local n i pid
    command -v curl >/dev/null || die "needs curl"
    command -v "$NATS_BIN" >/dev/null || die "no $NATS_BIN (apt-get install nats-server, or set NATS_SERVER_BIN)"
    [[ -x $BIN ]] || die "no hub binary at $BIN (cargo build --release, or set EVENTHUB_BIN)"
    for n in "${NODES[@]}"; do
        if live_pid "$DIR/nats-$n.pid" >/dev/null || live_pid "$DIR/hub-$n.pid" >/dev/null; then
            die "already running from $DIR: $0 stop first"
        fi
    done
    for p in "${HUB_PORTS[@]}" "${NATS_PORTS[@]}" "${ROUTE_PORTS[@]}" "${MON_PORTS[@]}"; do
        port_busy "$p" && die "port $p on 127.0.0.1 is in use"
    done
    # Wipe only a directory this script made (it leaves a marker in it).
    if [[ -d $DIR && ! -e $DIR/.eventhub-try-local && -n $(ls -A "$DIR") ]]; then
        die "$DIR exists and was not made by this script; set TRY_LOCAL_DIR elsewhere"
    fi
    rm -rf "$DIR"
    mkdir -p "$DIR"
    chmod 0700 "$DIR"
    : >"$DIR/.eventhub-try-local"

    for n in "${NODES[@]}"; do
        write_nats_conf "$n"
        start_nats "$n"
    done
    # /healthz is ok once the node is up, its JetStream has a meta leader
    # (a quorum of the three) and it is current.
    for n in "${NODES[@]}"; do
        i=$((n - 1))
        if ! wait_http "$DIR/nats-$n.pid" "http://127.0.0.1:${MON_PORTS[i]}/healthz" 30; then
            tail_log "$DIR/nats-$n.log"
            fail "NATS node $n did not become healthy"
        fi
        say "nats-$n  ready  nats://127.0.0.1:${NATS_PORTS[i]}  (routes :${ROUTE_PORTS[i]}, monitoring http://127.0.0.1:${MON_PORTS[i]})"
    done

    # Hub 1 first: it makes the stream (replicas 3); then the others,
    # which find it.
    for n in "${NODES[@]}"; do
        write_hub_conf "$n"
    done
    for n in "${NODES[@]}"; do
        i=$((n - 1))
        spawn "$DIR/hub-$n.pid" "$DIR/hub-$n.log" "$BIN" serve --config "$DIR/hub-$n.toml"
        if ! wait_http "$DIR/hub-$n.pid" "http://127.0.0.1:${HUB_PORTS[i]}/healthz" 40; then
            tail_log "$DIR/hub-$n.log"
            fail "hub $n did not answer /healthz"
        fi
        say "hub-$n   ready  http://127.0.0.1:${HUB_PORTS[i]}  $(curl -fsS --max-time 1 "http://127.0.0.1:${HUB_PORTS[i]}/healthz")"
    done

    cat <<EOF

eventhub cluster on loopback: 3 NATS nodes (JetStream, stream EVENTHUB,
3 replicas) and 3 hubs. Everything is in $DIR (configs, logs, stores).

Token (every hub; principal "demo", may publish and subscribe to all):

  TOKEN=$TOKEN

Subscribe on hub 2 and on hub 3 (two terminals; npm install -g wscat, or
websocat):

  wscat -H "Authorization: Bearer $TOKEN" -c "ws://127.0.0.1:8082/v1/ws/subscribe?event_types=pdfm"
  websocat -H="Authorization: Bearer $TOKEN" "ws://127.0.0.1:8083/v1/ws/subscribe?event_types=pdfm"

Publish on hub 1 (the answer names the stream's seq; hubs 2 and 3 deliver
the event with that seq):

  curl -H "Authorization: Bearer $TOKEN" -d '{"event_type":"pdfm","message":"VM_STATE_CHANGED","body":{"vm_id":"x"}}' http://127.0.0.1:8081/v1/events

Resume on any hub after seq N (the epoch is in the subscription's first
message): ws://127.0.0.1:808X/v1/ws/subscribe?event_types=pdfm&since=N&epoch=E

Lose a NATS node (the stream keeps going on the other two), then bring it
back:

  $0 kill-nats 2      # SIGKILL
  $0 start-nats 2     # the same node again, on its store

Status and logs:

  $0 status
  tail -f $DIR/hub-1.log $DIR/nats-1.log

Stop everything:

  $0 stop
EOF
}

# status_of NAME PIDFILE PORT: one line: the process and its /healthz.
status_of() {
    local pid health
    if pid=$(live_pid "$2"); then
        health=$(curl -sS --max-time 1 "http://127.0.0.1:$3/healthz" 2>&1 || true)
        say "$1  pid $pid  $health"
    else
        say "$1  not running"
    fi
}

status() {
    local n i
    for n in "${NODES[@]}"; do
        i=$((n - 1))
        status_of "nats-$n" "$DIR/nats-$n.pid" "${MON_PORTS[i]}"
    done
    for n in "${NODES[@]}"; do
        i=$((n - 1))
        status_of "hub-$n " "$DIR/hub-$n.pid" "${HUB_PORTS[i]}"
    done
}

# Stops the processes of the given pid files with SIGNAL, waits up to 15
# s, then SIGKILL.
stop_group() {
    local sig=$1 f pid i
    shift
    local pids=()
    for f in "$@"; do
        if pid=$(live_pid "$f"); then
            kill "-$sig" "$pid" 2>/dev/null || true
            pids+=("$pid")
        fi
        rm -f "$f"
    done
    ((${#pids[@]})) || return 0
    for ((i = 0; i < 150; i++)); do
        local alive=0
        for pid in "${pids[@]}"; do
            kill -0 "$pid" 2>/dev/null && alive=1
        done
        ((alive)) || return 0
        sleep 0.1
    done
    for pid in "${pids[@]}"; do
        kill -KILL "$pid" 2>/dev/null && say "try-local: pid $pid did not stop; killed"
    done
    return 0
}

stop() {
    local n
    [[ -d $DIR ]] || { say "try-local: nothing in $DIR"; return 0; }
    # The hubs first (SIGTERM: graceful, close 1001), then NATS (SIGINT:
    # its clean stop).
    stop_group TERM "$DIR"/hub-{1,2,3}.pid
    stop_group INT "$DIR"/nats-{1,2,3}.pid
    for n in "${NODES[@]}"; do
        rm -rf "${DIR:?}/nats-$n"
    done
    say "try-local: stopped; logs and configs left in $DIR (the next start wipes it)"
}

# kill-nats N: SIGKILL NATS node N (a crash); start-nats N: start it
# again on its store.
kill_nats() {
    local pid
    pid=$(live_pid "$DIR/nats-$1.pid") || die "nats-$1 is not running"
    kill -KILL "$pid"
    say "nats-$1 (pid $pid) killed"
}

restart_nats() {
    local i=$(($1 - 1))
    [[ -f $DIR/nats-$1.conf ]] || die "no $DIR/nats-$1.conf: start first"
    live_pid "$DIR/nats-$1.pid" >/dev/null && die "nats-$1 is running"
    start_nats "$1"
    wait_http "$DIR/nats-$1.pid" "http://127.0.0.1:${MON_PORTS[i]}/healthz" 30 ||
        die "nats-$1 did not become healthy (see $DIR/nats-$1.log)"
    say "nats-$1 (pid $(<"$DIR/nats-$1.pid")) ready again"
}

node_arg() {
    [[ ${1:-} =~ ^[123]$ ]] || die "which NATS node: 1, 2 or 3"
}

case ${1:-start} in
start) start ;;
stop) stop ;;
status) status ;;
kill-nats) node_arg "${2:-}" && kill_nats "$2" ;;
start-nats) node_arg "${2:-}" && restart_nats "$2" ;;
*) die "usage: $0 [start|status|stop|kill-nats N|start-nats N]" ;;
esac
