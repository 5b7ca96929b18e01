#!/usr/bin/env bash
# permessage-deflate (RFC 7692): eventhub, which compresses each event once
# and sends the same frame to every subscriber that agreed, against Node ws,
# which compresses for each connection; each with and without, interleaved.
#
#   perf/deflate.sh                         A2 and B, 3 rounds, 900-byte
#                                           Docker-event-like JSON
#   ROUNDS=1 SCENARIOS=A2 SIZE=600 perf/deflate.sh
#   LOAD_ARGS="--threads 2" VARIANTS="eventhub eventhub-deflate" SCENARIOS=B perf/deflate.sh
#                                           extra eventhub-load options for
#                                           every run (here: two reader
#                                           threads, where inflating in the
#                                           tool is what bounds the rate)
#
# Variants, run one right after another in every round (fresh process each):
#   eventhub          no offer (the hub sends plain frames)
#   eventhub-deflate  eventhub-load --deflate: every subscriber offers
#                     "permessage-deflate; client_max_window_bits"; the hub's
#                     [compression] defaults (enabled, min_bytes 256, level 2)
#   node-ws           perf/peers/node/server.js, perMessageDeflate off
#   node-ws-deflate   the same with --per-message-deflate: threshold 256,
#                     zlib level 2, server_no_context_takeover and
#                     client_no_context_takeover (see server.js; ws's default
#                     context takeover is not readable by eventhub-load)
# Scenarios (README's Performance, with SIZE-byte events of
# `--payload docker`):
#   A2  100 subscribers x 1,000 events/s, COUNT_A2 events (default 3,000)
#   B   1,000 subscribers, COUNT_B events (default 300) as fast as the
#       publisher sends
# The server runs WORKERS threads (default: all cores; Node one anyway),
# sharing the cores with the load tool (the shared mode of compare.sh).
# Each run writes target/perf/deflate/<scenario>-<variant>-<round>.json;
# the summary at the end gives each variant's median over the rounds and
# the ratios of eventhub-deflate to eventhub and node-ws-deflate to node-ws.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
source perf/lib.sh

SCENARIOS=${SCENARIOS:-"A2 B"}
VARIANTS=${VARIANTS:-"eventhub eventhub-deflate node-ws node-ws-deflate"}
ROUNDS=${ROUNDS:-3}
SIZE=${SIZE:-900}
COUNT_A2=${COUNT_A2:-3000}
COUNT_B=${COUNT_B:-300}
WORKERS=${WORKERS:-$(nproc)}
LOAD_ARGS=${LOAD_ARGS:-}
PORT=${PORT:-9500}
TOKEN=bench-token-0123456789abcdef
BIN=${CARGO_TARGET_DIR:-target}/release
OUT=target/perf/deflate
mkdir -p "$OUT"

cargo build --release -q -p eventhub -p eventhub-load || exit 1
if [[ ! -d perf/peers/node/node_modules/ws ]]; then
    npm install --silent --no-audit --no-fund --prefix perf/peers/node >/dev/null || exit 1
fi
"$BIN/eventhub-load" --help | grep -q -- --deflate || { echo "$BIN/eventhub-load has no --deflate" >&2; exit 1; }

bench_config 1048576 262144 >"$OUT/bench.toml"

start_server() {
    local log="$OUT/server-$1.log" listen=127.0.0.1:$PORT
    : >"$log"
    case $1 in
        eventhub*) "$BIN/eventhub" serve --listen "$listen" --workers "$WORKERS" --config "$OUT/bench.toml" >"$log" 2>&1 & ;;
        node-ws) (ulimit -n "$(ulimit -Hn)"; exec node perf/peers/node/server.js --listen "$listen") >"$log" 2>&1 & ;;
        node-ws-deflate) (ulimit -n "$(ulimit -Hn)"; exec node perf/peers/node/server.js --listen "$listen" --per-message-deflate) >"$log" 2>&1 & ;;
        *) echo "unknown variant $1" >&2; return 1 ;;
    esac
    server_pid=$!
    wait_for_line "$log" listening "$1"
}
trap stop_server EXIT

scenario_args() {
    case $1 in
        A2) echo "--subscribers 100 --rate 1000 --count $COUNT_A2" ;;
        B) echo "--subscribers 1000 --rate 0 --count $COUNT_B" ;;
        *) return 1 ;;
    esac
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r); shared: server ($WORKERS threads) and load tool on all cores; node $(node --version), ws $(node -p "require('./perf/peers/node/node_modules/ws/package.json').version"); date: $(date -u +%Y-%m-%dT%H:%MZ)"
echo "command: LOAD_ARGS=\"$LOAD_ARGS\" SCENARIOS=\"$SCENARIOS\" VARIANTS=\"$VARIANTS\" ROUNDS=$ROUNDS SIZE=$SIZE COUNT_A2=$COUNT_A2 COUNT_B=$COUNT_B WORKERS=$WORKERS perf/deflate.sh"
status=0
for round in $(seq 1 "$ROUNDS"); do
    for scenario in $SCENARIOS; do
        for variant in $VARIANTS; do
            start_server "$variant" || { status=1; stop_server; continue; }
            kind=peer deflate=()
            [[ $variant == eventhub* ]] && kind=eventhub
            [[ $variant == *-deflate ]] && deflate=(--deflate)
            # shellcheck disable=SC2046
            "$BIN/eventhub-load" --addr "127.0.0.1:$PORT" --kind "$kind" --token "$TOKEN" \
                --size "$SIZE" --payload docker --server-pid "$server_pid" \
                --label "$scenario $variant #$round" --json "$OUT/$scenario-$variant-$round.json" \
                "${deflate[@]}" $LOAD_ARGS $(scenario_args "$scenario") || status=1
            stop_server
            PORT=$((PORT + 1))
        done
    done
done

python3 - "$OUT" "$ROUNDS" "$SCENARIOS" "$VARIANTS" <<'PY'
import json, os, statistics, sys
out, rounds, scenarios, variants = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4].split()
def runs(s, v):
    r = []
    for i in range(1, rounds + 1):
        p = f"{out}/{s}-{v}-{i}.json"
        if os.path.exists(p):
            r.append(json.load(open(p)))
    return r
def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None
def f(x, fmt):
    return "n/a" if x is None else format(x, fmt)
print()
print("median over %d rounds (each figure on its own; ratios are of medians)" % rounds)
print("| scenario | variant | deliveries/s | server CPU us/delivery | p50 us | p99 us | wire B/delivery | compress us/event (hub) | runs ok |")
print("|---|---|---|---|---|---|---|---|---|")
summary = {}
for s in scenarios:
    for v in variants:
        r = runs(s, v)
        if not r:
            continue
        m = {
            "dps": med([x["deliveries_per_s"] for x in r]),
            "cpu": med([x["server_cpu_us_per_delivery"] for x in r]),
            "p50": med([x["latency_us"]["p50"] for x in r]),
            "p99": med([x["latency_us"]["p99"] for x in r]),
            "wire": med([x.get("wire_bytes_per_delivery") for x in r]),
            "comp": med([x.get("deflate", {}).get("server_compress_us_per_event") for x in r]),
            "ok": sum(1 for x in r if x["deliveries"] == x["expected"] and x["gaps"] + x["duplicates"] + x["disorder"] == 0),
            "n": len(r),
        }
        summary[(s, v)] = m
        print(f"| {s} | {v} | {f(m['dps'], '.0f')} | {f(m['cpu'], '.3f')} | {f(m['p50'], '.1f')} | {f(m['p99'], '.1f')} | {f(m['wire'], '.1f')} | {f(m['comp'], '.2f')} | {m['ok']}/{m['n']} |")
print()
print("per round: with / without (same round, back to back)")
for s in scenarios:
    for base, comp in [("eventhub", "eventhub-deflate"), ("node-ws", "node-ws-deflate")]:
        if base not in variants or comp not in variants:
            continue
        for i in range(1, rounds + 1):
            try:
                a = json.load(open(f"{out}/{s}-{base}-{i}.json"))
                b = json.load(open(f"{out}/{s}-{comp}-{i}.json"))
            except OSError:
                continue
            def ratio(key):
                x, y = a.get(key), b.get(key)
                return "n/a" if not x or y is None else f"{y / x:.3f}"
            dcpu = None
            if a["server_cpu_us_per_delivery"] is not None and b["server_cpu_us_per_delivery"] is not None:
                dcpu = b["server_cpu_us_per_delivery"] - a["server_cpu_us_per_delivery"]
            comp_us = b.get("deflate", {}).get("server_compress_us_per_event")
            fan = b["subscribers"]
            extra = ""
            if comp_us is not None:
                extra = f" compress/event {comp_us:.2f} us = {comp_us / fan:.4f} us per delivery at fan-out {fan}"
            print(f"{s} {comp}/{base} #{i}: deliveries/s {ratio('deliveries_per_s')} cpu/delivery {ratio('server_cpu_us_per_delivery')} (delta {f(dcpu, '+.3f')} us) wire {ratio('wire_bytes_per_delivery')} p50 {b['latency_us']['p50'] / a['latency_us']['p50']:.2f} p99 {b['latency_us']['p99'] / a['latency_us']['p99']:.2f}{extra}")
PY
exit $status
