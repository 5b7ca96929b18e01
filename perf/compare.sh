#!/usr/bin/env bash
# Runs eventhub and each peer server back to back with the same load and
# prints one table (and writes target/perf/<scenario>-<server>-<reader>.json).
#
#   perf/compare.sh                     every scenario, server and reader
#   SCENARIOS="A A2" SERVERS="eventhub bun" READERS=epoll perf/compare.sh
#   PINNED=1 perf/compare.sh            the pinned comparison (below)
#   WORKERS=2 perf/compare.sh           server threads in the shared mode
#                                       (default: all cores)
#   EVENTHUB_BASE=/tmp/base/eventhub SERVERS="eventhub eventhub-base" perf/compare.sh
#                                       this build against another build of
#                                       eventhub (e.g. the commit before a
#                                       change), same load tool, same run
#   TLS=1 SCENARIOS="A2 B C" perf/compare.sh
#   SYSCALLS=1 SCENARIOS="A2 Bw" perf/compare.sh
#                                       also count each server's write
#                                       syscalls (kernel tracepoints): the
#                                       deliveries per write of every peer
#                                       every run over plain ws and then over
#                                       wss, back to back (below)
#
# Modes:
#   shared (default, PINNED unset or 0)
#                     server and load tool share every core; the server runs
#                     WORKERS threads (eventhub --workers, peers --threads).
#   PINNED=1          the server is pinned to core 0 (taskset -c 0) with one
#                     thread (eventhub --workers 1, peers --threads 1; Node
#                     and Bun run one event-loop thread anyway), the load tool
#                     to core 1 (taskset -c 1): one core each, no contention
#                     between them. Needs 2 cores or more; WORKERS is ignored.
# The header line says which mode ran.
#
# Readers: READERS (default "epoll tungstenite") names the load tool's
# subscriber readers (eventhub-load --reader); every scenario and server runs
# once per reader (the load tool's row names its reader).
# READERS=none passes no --reader (a load tool from before that option).
#
# TLS: TLS=1 runs each scenario, reader and server over plain ws and then,
# right after, over wss (TLS 1.3 and AES-256-GCM, the first choice of the
# load tool's rustls client; a P-256 certificate from `eventhub dev-cert`,
# made once in target/perf/tls), so that the two are measured in the same
# window of the box's speed. The load tool's rows end with what was agreed. The servers that serve wss are eventhub (and eventhub-base:
# `[tls] cert/key` with `listen = ""`, wss on its one address, /metrics over
# https) and tokio-tungstenite (--tls-cert/--tls-key: tokio-rustls); the
# others run over ws only. The load tool connects everything (subscribers
# under either reader, the publisher, the /metrics scrape) over TLS with
# --tls-ca. Rows and files are named with "wss" ("B eventhub wss",
# B-eventhub-wss-epoll.json). TLS=0 or unset: plain ws only.
#
# Scenarios (256-byte events):
#   A   1,000 subscribers x 100 events/s (10 s)
#   A2  100 subscribers x 1,000 events/s (10 s)
#   B   1,000 subscribers, 2,000 events as fast as the publisher can send
#       (open loop: a burst that the servers must queue)
#   Bw  1,000 subscribers, 2,000 events, closed loop: at most 32 events in
#       flight per subscriber (eventhub-load --window 32), rate 0 (as fast as
#       the window allows)
#   C   19,000 idle subscribed connections: server RSS per connection
#   S   connect storm: 19,000 idle subscribers opened at 20,000/s: connections
#       per second and server CPU per connection
#   E   as A, with 1% of the subscribers not reading: the others' latency
# Servers: eventhub, tokio-tungstenite, fastwebsockets (perf/peers),
# node-ws (Node + ws, perf/peers/node), bun (Bun.serve, i.e. uWebSockets,
# perf/peers/bun), and eventhub-base (the binary named by EVENTHUB_BASE).
# Every peer follows the same broadcast contract (perf/peers/node/server.js).
# What a run needs is built or installed first: eventhub, eventhub-load and
# the Rust peers with cargo, node-ws and bun with npm (once, into their
# node_modules; BUN=/path/to/bun uses another Bun binary instead).
#
# Everything runs on this machine over loopback; each run is bounded by its
# event count and the load tool's --timeout. The figures to compare are the
# server's CPU time per delivery and the latency percentiles; in the shared
# mode the load tool shares the cores, so absolute rates depend on the
# machine. Runs are interleaved: for each scenario (and reader) the servers
# run one right after another, each on a fresh process, so a drift in the
# machine's speed (other tenants, frequency) hits them about alike. On a box
# whose speed drifts only the ratios between servers within one run mean
# anything; do not compare absolute figures across runs.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
source perf/lib.sh

SCENARIOS=${SCENARIOS:-"A A2 B Bw C S E"}
SERVERS=${SERVERS:-"eventhub tokio-tungstenite fastwebsockets node-ws bun"}
READERS=${READERS:-"epoll tungstenite"}
PINNED=${PINNED:-}
TLS=${TLS:-}
WORKERS=${WORKERS:-$(nproc)}
PORT=${PORT:-9300}
TOKEN=bench-token-0123456789abcdef
BIN=${CARGO_TARGET_DIR:-target}/release
OUT=target/perf
BUN_DEFAULT=perf/peers/bun/node_modules/@oven/bun-linux-x64/bin/bun
BUN=${BUN:-$BUN_DEFAULT}
mkdir -p "$OUT"

has() { [[ " $SERVERS " == *" $1 "* ]]; }

server_pin=()
load_pin=()
if [[ $PINNED == 1 ]]; then
    command -v taskset >/dev/null || { echo "PINNED=1 needs taskset (util-linux)" >&2; exit 2; }
    (($(nproc) >= 2)) || { echo "PINNED=1 needs 2 cores, this machine has $(nproc)" >&2; exit 2; }
    server_pin=(taskset -c 0)
    load_pin=(taskset -c 1)
    WORKERS=1
elif [[ -n $PINNED && $PINNED != 0 ]]; then
    echo "PINNED is 1 (pinned), or 0 or unset (shared), not '$PINNED'" >&2
    exit 2
fi
case $TLS in
    1) TRANSPORTS="ws wss" ;;
    "" | 0) TRANSPORTS="ws" ;;
    *) echo "TLS is 1 (ws and wss), or 0 or unset (ws only), not '$TLS'" >&2; exit 2 ;;
esac
serves_wss() { [[ $1 == eventhub || $1 == eventhub-base || $1 == tokio-tungstenite ]]; }
if has eventhub-base && [[ -z ${EVENTHUB_BASE:-} ]]; then
    echo "eventhub-base: set EVENTHUB_BASE to the other eventhub binary" >&2
    exit 2
fi

# Build everything that runs (all of eventhub and eventhub-load, not only the
# eventhub binary: a fresh clone has no eventhub-load either). The peers build
# on their own: one build with them would unify dependency features across
# all three packages and rebuild eventhub every time the set changes.
cargo build --release -q -p eventhub -p eventhub-load || exit 1
if has tokio-tungstenite || has fastwebsockets; then
    cargo build --release -q -p eventhub-peers || exit 1
fi
if has node-ws && [[ ! -d perf/peers/node/node_modules ]]; then
    npm install --silent --no-audit --no-fund --prefix perf/peers/node >/dev/null || exit 1
fi
if has bun && [[ $BUN == "$BUN_DEFAULT" && ! -x $BUN ]]; then
    npm install --silent --no-audit --no-fund --prefix perf/peers/bun >/dev/null || exit 1
fi
if has bun && ! "$BUN" --version >/dev/null 2>&1; then
    echo "bun: $BUN does not run" >&2
    exit 1
fi

# The load tool must know the options this script passes.
load_help=$("$BIN/eventhub-load" --help 2>&1)
if [[ " $READERS " != " none " && $load_help != *--reader* ]]; then
    echo "$BIN/eventhub-load has no --reader option (READERS=\"$READERS\")" >&2
    exit 1
fi
if [[ " $SCENARIOS " == *" Bw "* && $load_help != *--window* ]]; then
    echo "$BIN/eventhub-load has no --window option (scenario Bw)" >&2
    exit 1
fi
if [[ $TLS == 1 && $load_help != *--tls-ca* ]]; then
    echo "$BIN/eventhub-load has no --tls-ca option (TLS=1)" >&2
    exit 1
fi

# wss: a development CA and a certificate for 127.0.0.1 (made once, then
# reused: eventhub dev-cert keeps what is there).
TLS_DIR=$OUT/tls
if [[ $TLS == 1 ]]; then
    "$BIN/eventhub" dev-cert --out "$TLS_DIR" >/dev/null || exit 1
fi

# The hub's config per scenario: a 1 MiB send queue (B's bursts reach a few
# hundred KB per subscriber), except in E, where the non-readers should be
# closed within the run: 64 KiB of queue and a 64 KiB socket buffer (128 KiB
# of kernel memory) hold about 7 s of E's events (a healthy subscriber never
# queues that much).
write_config() {
    local tls=${3:-}
    bench_config "$1" "$2"
    if [[ -n $tls ]]; then
        # wss on the --listen address (listen = "": no plain ws beside it).
        cat <<TOML
[tls]
cert = "$TLS_DIR/cert.pem"
key = "$TLS_DIR/key.pem"
listen = ""
TOML
    fi
}
write_config 1048576 262144 >"$OUT/bench.toml"
write_config 65536 65536 >"$OUT/bench-e.toml"
write_config 1048576 262144 tls >"$OUT/bench-wss.toml"
write_config 65536 65536 tls >"$OUT/bench-e-wss.toml"

# start_server NAME SCENARIO TRANSPORT (ws or wss)
start_server() {
    local name=$1 config=$OUT/bench tls_args=()
    [[ $2 == E ]] && config=$config-e
    if [[ $3 == wss ]]; then
        config=$config-wss
        tls_args=(--tls-cert "$TLS_DIR/cert.pem" --tls-key "$TLS_DIR/key.pem")
    fi
    config=$config.toml
    local log="$OUT/server-$name-$3.log"
    local listen=127.0.0.1:$PORT
    # Emptied here, not only by the server's redirection (which runs in the
    # child, after the wait below may already have read the last run's
    # "listening" line).
    : >"$log"
    case $name in
        eventhub) "${server_pin[@]}" "$BIN/eventhub" serve --listen "$listen" --workers "$WORKERS" --config "$config" >"$log" 2>&1 & ;;
        eventhub-base) "${server_pin[@]}" "$EVENTHUB_BASE" serve --listen "$listen" --workers "$WORKERS" --config "$config" >"$log" 2>&1 & ;;
        tokio-tungstenite) "${server_pin[@]}" "$BIN/peer-tokio-tungstenite" --listen "$listen" --threads "$WORKERS" "${tls_args[@]}" >"$log" 2>&1 & ;;
        fastwebsockets) "${server_pin[@]}" "$BIN/peer-fastwebsockets" --listen "$listen" --threads "$WORKERS" >"$log" 2>&1 & ;;
        node-ws) (ulimit -n "$(ulimit -Hn)"; exec "${server_pin[@]}" node perf/peers/node/server.js --listen "$listen" --threads "$WORKERS") >"$log" 2>&1 & ;;
        bun) (ulimit -n "$(ulimit -Hn)"; exec "${server_pin[@]}" "$BUN" perf/peers/bun/server.js --listen "$listen" --threads "$WORKERS") >"$log" 2>&1 & ;;
        *) echo "unknown server $name" >&2; return 1 ;;
    esac
    server_pid=$!
    wait_for_line "$log" listening "$name"
}

trap stop_server EXIT

scenario_args() {
    case $1 in
        A) echo "--subscribers 1000 --rate 100 --count 1000" ;;
        A2) echo "--subscribers 100 --rate 1000 --count 10000" ;;
        B) echo "--subscribers 1000 --rate 0 --count 2000" ;;
        Bw) echo "--subscribers 1000 --rate 0 --count 2000 --window 32" ;;
        C) echo "--subscribers 19000 --idle --ramp-per-s 4000" ;;
        S) echo "--subscribers 19000 --idle --ramp-per-s 20000" ;;
        E) echo "--subscribers 1000 --rate 100 --count 1000 --slow-percent 1" ;;
        *) return 1 ;;
    esac
}

for scenario in $SCENARIOS; do
    scenario_args "$scenario" >/dev/null || { echo "unknown scenario $scenario" >&2; exit 2; }
done

if [[ $PINNED == 1 ]]; then
    mode="pinned: server on core 0 with 1 thread, load tool on core 1"
else
    mode="shared: server ($WORKERS threads) and load tool on all $(nproc) cores"
fi
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r); mode $mode; readers: $READERS; transports: $TRANSPORTS; date: $(date -u +%Y-%m-%dT%H:%MZ)"
# SYSCALLS=1: the server's write syscalls over each run, counted by the
# kernel's tracepoints (`perf stat -e syscalls:sys_enter_*`, every thread of
# the server; needs perf and tracefs, mounted here if it is not), and the
# deliveries per write they give: how much each server coalesces, for the
# peers too (eventhub also reports its own count from /metrics). The count
# covers the whole run, connects and confirmations included (a few per
# subscriber, against thousands of deliveries each).
SYSCALLS=${SYSCALLS:-}
WRITE_EVENTS=syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_sendto,syscalls:sys_enter_sendmsg,syscalls:sys_enter_sendmmsg
if [[ $SYSCALLS == 1 ]]; then
    command -v perf >/dev/null || { echo "SYSCALLS=1 needs perf" >&2; exit 2; }
    if [[ ! -d /sys/kernel/tracing/events/syscalls ]]; then
        mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null
    fi
    [[ -d /sys/kernel/tracing/events/syscalls ]] || { echo "SYSCALLS=1 needs tracefs with syscall tracepoints" >&2; exit 2; }
fi
perf_pid=""
count_syscalls_start() {
    [[ $SYSCALLS == 1 ]] || return 0
    perf stat -x, -e "$WRITE_EVENTS" -p "$server_pid" -o "$1" 2>/dev/null &
    perf_pid=$!
}
count_syscalls_report() {
    [[ $SYSCALLS == 1 && -n $perf_pid ]] || return 0
    kill -INT "$perf_pid" 2>/dev/null
    wait "$perf_pid" 2>/dev/null
    perf_pid=""
    python3 - "$@" <<'PY'
import json, sys
label, reader, counts, report = sys.argv[1:5]
writes = {}
for line in open(counts):
    parts = line.strip().split(",")
    if len(parts) > 2 and parts[0].isdigit():
        writes[parts[2].rsplit("sys_enter_", 1)[-1]] = int(parts[0])
total = sum(writes.values())
deliveries = json.load(open(report))["deliveries"]
detail = " ".join(f"{k} {v}" for k, v in sorted(writes.items()) if v)
per = f"{deliveries / total:.2f}" if total else "-"
print(f"{label:<22} {reader:<11} syscalls: {total} writes ({detail}) for {deliveries} deliveries: {per} deliveries per write")
PY
}

status=0
for scenario in $SCENARIOS; do
    for reader in $READERS; do
        reader_args=(--reader "$reader")
        file_reader=-$reader
        if [[ $reader == none ]]; then reader_args=(); file_reader=""; fi
        for server in $SERVERS; do
            for transport in $TRANSPORTS; do
                [[ $transport == ws ]] || serves_wss "$server" || continue
                start_server "$server" "$scenario" "$transport" || { status=1; stop_server; continue; }
                kind=peer
                [[ $server == eventhub* ]] && kind=eventhub
                label="$scenario $server" file="$scenario-$server" tls_args=()
                if [[ $transport == wss ]]; then
                    label+=" wss" file+="-wss"
                    tls_args=(--tls-ca "$TLS_DIR/ca.pem")
                fi
                count_syscalls_start "$OUT/$file$file_reader.syscalls"
                # shellcheck disable=SC2046
                "${load_pin[@]}" "$BIN/eventhub-load" --addr "127.0.0.1:$PORT" --kind "$kind" --token "$TOKEN" --size 256 \
                    --server-pid "$server_pid" --label "$label" \
                    --json "$OUT/$file$file_reader.json" \
                    "${reader_args[@]}" "${tls_args[@]}" $(scenario_args "$scenario") || status=1
                count_syscalls_report "$label" "$reader" "$OUT/$file$file_reader.syscalls" "$OUT/$file$file_reader.json"
                stop_server
                PORT=$((PORT + 1))
            done
        done
    done
done
exit $status
