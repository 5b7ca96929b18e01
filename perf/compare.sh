#!/usr/bin/env bash
# Runs eventhub and each peer server back to back with the same load and
# prints one table (and writes target/perf/<scenario>-<server>.json).
#
#   perf/compare.sh                     every scenario, every server
#   SCENARIOS="A A2" SERVERS="eventhub node-ws" perf/compare.sh
#   WORKERS=2 perf/compare.sh           server threads (default: all cores)
#   EVENTHUB_BASE=/tmp/base/eventhub SERVERS="eventhub eventhub-base" perf/compare.sh
#                                       this build against another build of
#                                       eventhub (e.g. the commit before a
#                                       change), same load tool, same run
#
# Scenarios (256-byte events):
#   A   1,000 subscribers x 100 events/s (10 s)
#   A2  100 subscribers x 1,000 events/s (10 s)
#   B   1,000 subscribers, 2,000 events as fast as possible
#   C   19,000 idle subscribed connections: server RSS per connection
#   E   as A, with 1% of the subscribers not reading: the others' latency
# Servers: eventhub, tokio-tungstenite, fastwebsockets, node-ws, and
# eventhub-base (the binary named by EVENTHUB_BASE).
#
# Everything runs on this machine over loopback; each run is bounded by its
# event count and the load tool's --timeout. The figures to compare are the
# server's CPU time per delivery and the latency percentiles; the load tool
# shares the cores, so absolute rates depend on the machine.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2

SCENARIOS=${SCENARIOS:-"A A2 B C E"}
SERVERS=${SERVERS:-"eventhub tokio-tungstenite fastwebsockets node-ws"}
WORKERS=${WORKERS:-$(nproc)}
PORT=${PORT:-9300}
TOKEN=bench-token-0123456789abcdef
OUT=target/perf
mkdir -p "$OUT"

cargo build --release -q --bin eventhub -p eventhub -p eventhub-load || exit 1
if [[ " $SERVERS " == *" tokio-tungstenite "* || " $SERVERS " == *" fastwebsockets "* ]]; then
    cargo build --release -q -p eventhub-peers || exit 1
fi
if [[ " $SERVERS " == *" node-ws "* && ! -d perf/peers/node/node_modules ]]; then
    npm install --silent --no-audit --no-fund --prefix perf/peers/node >/dev/null || exit 1
fi

# The hub's config per scenario: a 1 MiB send queue (B's bursts reach a few
# hundred KB per subscriber), except in E, where the non-readers should be
# closed within the run: 64 KiB of queue and a 64 KiB socket buffer (128 KiB
# of kernel memory) hold about 7 s of E's events (a healthy subscriber never
# queues that much).
write_config() {
    local queue=$1 sndbuf=$2
    cat <<TOML
[hub]
# Benchmarks connect many clients from few addresses.
max_connections_per_ip = 0
connect_rate_per_ip = 0.0
[limits]
send_queue_bytes = $queue
socket_send_buffer_bytes = $sndbuf
[[principals]]
name = "bench"
token = "$TOKEN"
admin = true
publish = ["*"]
TOML
}
write_config 1048576 262144 >"$OUT/bench.toml"
write_config 65536 65536 >"$OUT/bench-e.toml"

server_pid=""
start_server() {
    local name=$1 config=$OUT/bench.toml
    [[ $2 == E ]] && config=$OUT/bench-e.toml
    local log="$OUT/server-$name.log"
    case $name in
        eventhub) target/release/eventhub serve --listen 127.0.0.1:$PORT --workers "$WORKERS" --config "$config" >"$log" 2>&1 & ;;
        eventhub-base) "${EVENTHUB_BASE:?set EVENTHUB_BASE to the other eventhub binary}" serve --listen 127.0.0.1:$PORT --workers "$WORKERS" --config "$config" >"$log" 2>&1 & ;;
        tokio-tungstenite) target/release/peer-tokio-tungstenite --listen 127.0.0.1:$PORT --threads "$WORKERS" >"$log" 2>&1 & ;;
        fastwebsockets) target/release/peer-fastwebsockets --listen 127.0.0.1:$PORT --threads "$WORKERS" >"$log" 2>&1 & ;;
        node-ws) (ulimit -n "$(ulimit -Hn)"; exec node perf/peers/node/server.js --listen 127.0.0.1:$PORT) >"$log" 2>&1 & ;;
        *) echo "unknown server $name" >&2; return 1 ;;
    esac
    server_pid=$!
    for _ in $(seq 1 100); do
        grep -q "listening" "$log" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "$name did not start; see $log" >&2
    return 1
}

stop_server() {
    [[ -n $server_pid ]] || return
    kill "$server_pid" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
    server_pid=""
}
trap stop_server EXIT

scenario_args() {
    case $1 in
        A) echo "--subscribers 1000 --rate 100 --count 1000" ;;
        A2) echo "--subscribers 100 --rate 1000 --count 10000" ;;
        B) echo "--subscribers 1000 --rate 0 --count 2000" ;;
        C) echo "--subscribers 19000 --idle --ramp-per-s 4000" ;;
        E) echo "--subscribers 1000 --rate 100 --count 1000 --slow-percent 1" ;;
    esac
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r); server threads: $WORKERS; date: $(date -u +%Y-%m-%dT%H:%MZ)"
status=0
for scenario in $SCENARIOS; do
    for server in $SERVERS; do
        start_server "$server" "$scenario" || { status=1; continue; }
        kind=peer
        [[ $server == eventhub* ]] && kind=eventhub
        # shellcheck disable=SC2046
        target/release/eventhub-load --addr 127.0.0.1:$PORT --kind $kind --token $TOKEN --size 256 \
            --server-pid "$server_pid" --label "$scenario $server" --json "$OUT/$scenario-$server.json" \
            $(scenario_args "$scenario") || status=1
        stop_server
        PORT=$((PORT + 1))
    done
done
exit $status
