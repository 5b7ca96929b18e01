#!/usr/bin/env bash
# What cluster mode ([cluster]: a NATS JetStream stream as the event log)
# costs against one process, measured in one interleaved run on this
# machine, and prints one table (JSON reports in $OUT, below).
#
#   perf/cluster.sh                     every part, 3 repeats
#   PARTS="latency fanout" REPEATS=5 perf/cluster.sh
#   WORKERS=2 perf/cluster.sh           worker threads per hub (default 1)
#   QUIET_WAIT_S=60 perf/cluster.sh     before each run, wait up to 60 s for
#                                       the box to be idle (other work under
#                                       0.2 cores over 2 s; default 0: no
#                                       wait)
#
# Ports: each process gets a loopback port nobody listens on when it
# starts (the box may run other hubs and nats-servers meanwhile).
#
# Parts (256-byte events, the epoll reader):
#   latency  publish-to-receive latency, open loop: 20 subscribers, 500
#            events/s for 5 s from one publisher. Variants: one process
#            (no [cluster]); a 1-node cluster; a 3-node cluster with the
#            publisher on node A and the subscribers spread over A, B, C.
#   ingest   events per second through the log: 1 subscriber, closed loop
#            (--rate 0 --window 256, so that the publisher never has more
#            unacknowledged events than cluster.max_acks_pending allows and
#            none is refused). Variants: one process; a 1-node cluster.
#   fanout   deliveries per second: 300 subscribers, 5,000 events closed
#            loop (--rate 0 --window 32), the publisher on node A and the
#            subscribers spread over 1, 2 or 3 nodes of a cluster; one
#            process beside them for reference.
#
# Every run gets fresh processes: a new nats-server (JetStream, file
# storage in a new store directory under $OUT, `-js -sd`), then the hubs,
# each started once the one before it listens (a cluster hub needs NATS up
# at start). Runs are interleaved: each repeat runs every variant of a part
# one right after another, so a drift in the machine's speed hits them
# about alike; only the ratios within one run mean anything on a box that
# drifts.
#
# Server CPU is the hubs' (summed over the nodes, from eventhub-load's
# --server-pid list); nats-server's own CPU is read from /proc/<pid>/stat
# around each load run and given beside it (per event published, and as a
# share of one core over the publishing), since on a small box it competes
# for the same cores as the hubs and the load tool. The table's "other
# cores" says how much of the box other work took during each run; where
# that is large, a variant with more threads (three hubs and nats-server
# against one hub) also gets a larger share of the cores from the
# scheduler, which flatters the cluster's throughput.
#
# Everything runs on this machine over loopback and is killed on exit.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
source perf/lib.sh

PARTS=${PARTS:-"latency ingest fanout"}
REPEATS=${REPEATS:-3}
QUIET_WAIT_S=${QUIET_WAIT_S:-0}
WORKERS=${WORKERS:-1}
TOKEN=bench-token-0123456789abcdef
TARGET=${CARGO_TARGET_DIR:-target}
BIN=$TARGET/release
OUT=${OUT:-$TARGET/perf/cluster}
mkdir -p "$OUT"
TICKS=$(getconf CLK_TCK)

command -v nats-server >/dev/null || { echo "needs nats-server (apt-get install nats-server)" >&2; exit 2; }
cargo build --release -q -p eventhub -p eventhub-load || exit 1

# One config for every hub: without --nats-url it is one process; with it,
# a node of the cluster on a file-backed stream.
{
    bench_config 1048576 262144
    printf '[cluster]\nstorage = "file"\n'
} >"$OUT/bench.toml"

# A loopback port free now.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

nats_pid="" nats_store="" nats_log="" nats_url=""
hub_pids=() hub_addrs=() hub_logs=()

# start_nats: a fresh nats-server with JetStream and a new store.
start_nats() {
    local port
    port=$(free_port)
    nats_url=nats://127.0.0.1:$port
    nats_store=$OUT/nats-store-$port
    rm -rf "$nats_store"
    nats_log=$OUT/nats-$port.log
    : >"$nats_log"
    nats-server -js -a 127.0.0.1 -p "$port" -sd "$nats_store" >"$nats_log" 2>&1 &
    nats_pid=$!
    wait_for_line "$nats_log" "Server is ready" nats-server
}

# start_hub [NATS_URL]: one hub, waited for.
start_hub() {
    local port cluster=()
    port=$(free_port)
    local listen=127.0.0.1:$port log=$OUT/hub-$port.log
    [[ -n ${1:-} ]] && cluster=(--nats-url "$1")
    : >"$log"
    "$BIN/eventhub" serve --listen "$listen" --workers "$WORKERS" --config "$OUT/bench.toml" "${cluster[@]}" >"$log" 2>&1 &
    hub_pids+=($!)
    hub_addrs+=("$listen")
    hub_logs+=("$log")
    wait_for_line "$log" listening eventhub
}

# start_variant VARIANT: single (one process), or cN (nats-server and N nodes).
start_variant() {
    case $1 in
        single) start_hub ;;
        c[1-9])
            start_nats || return 1
            for _ in $(seq 1 "${1#c}"); do start_hub "$nats_url" || return 1; done
            ;;
        *) echo "unknown variant $1" >&2; return 1 ;;
    esac
}

# stop_all: the hubs first (a cluster hub would log NATS going away), then
# nats-server and its store.
stop_all() {
    local pid
    for pid in "${hub_pids[@]}"; do stop_pid "$pid"; done
    hub_pids=() hub_addrs=() hub_logs=()
    if [[ -n $nats_pid ]]; then
        stop_pid "$nats_pid"
        nats_pid=""
        rm -rf "$nats_store"
        nats_log="" nats_url=""
    fi
}
trap stop_all EXIT

# utime + stime of processes, in clock ticks (0 for none).
cpu_ticks() {
    local pid total=0
    for pid in "$@"; do
        [[ -r /proc/$pid/stat ]] || continue
        total=$((total + $(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat")))
    done
    echo "$total"
}
# The CPU time of this script's children that ended (cutime + cstime): the
# load tool's, read around it.
ended_children_ticks() {
    awk '{ sub(/^.*\) /, ""); print $14 + $15 }' "/proc/$$/stat"
}
# The whole machine's busy time in processes (user, nice, system) and
# taken by the hypervisor (steal), in clock ticks: what is left of it after
# the hubs', nats-server's and the load tool's is other work on the box,
# which this run competed with. Interrupt and softirq time are left out:
# the kernel counts them to no process, and loopback TCP's softirq work is
# this run's own.
box_ticks() {
    awk '/^cpu / { print $2 + $3 + $4 + $9 }' /proc/stat
}

# wait_quiet: with QUIET_WAIT_S, until the machine's busy time over 2 s is
# under 0.2 cores (this script's processes are stopped between runs, so
# what is busy then is someone else's), or QUIET_WAIT_S have passed.
wait_quiet() {
    local until=$((SECONDS + QUIET_WAIT_S)) before
    while ((SECONDS < until)); do
        before=$(box_ticks)
        sleep 2
        (($(box_ticks) - before < TICKS * 2 / 5)) && return
    done
}

part_args() {
    case $1 in
        latency) echo "--subscribers 20 --rate 500 --count 2500" ;;
        ingest) echo "--subscribers 1 --rate 0 --window 256 --count 100000" ;;
        fanout) echo "--subscribers 300 --rate 0 --window 32 --count 5000" ;;
        *) return 1 ;;
    esac
}
part_variants() {
    case $1 in
        latency) echo "single c1 c3" ;;
        ingest) echo "single c1" ;;
        fanout) echo "single c1 c2 c3" ;;
    esac
}
for part in $PARTS; do
    part_args "$part" >/dev/null || { echo "unknown part $part" >&2; exit 2; }
done

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r); date: $(date -u +%Y-%m-%dT%H:%MZ)"
echo "hubs: $WORKERS worker(s) each; $(nats-server --version), JetStream file storage (a new store per run, nats-server's default sync); every process on all $(nproc) cores, loopback"
echo "variants: single = one process, no [cluster]; cN = nats-server and N hub nodes, the publisher on node A, subscribers spread round-robin over the N nodes"

PROBLEM='WARN|ERROR|\[WRN\]|\[ERR\]'
rm -f "$OUT"/hub-*.log "$OUT"/nats-*.log
ROWS=$OUT/rows.tsv
: >"$ROWS"
status=0
for part in $PARTS; do
    for rep in $(seq 1 "$REPEATS"); do
        for variant in $(part_variants "$part"); do
            label="$part $variant #$rep"
            json=$OUT/$part-$variant-$rep.json
            wait_quiet
            start_variant "$variant" || { status=1; stop_all; continue; }
            addrs=$(IFS=,; echo "${hub_addrs[*]}")
            pids=$(IFS=,; echo "${hub_pids[*]}")
            declare -A log_lines=()
            for log in "${hub_logs[@]}" ${nats_log:+"$nats_log"}; do log_lines[$log]=$(wc -l <"$log"); done
            nats_before=$(cpu_ticks $nats_pid) hubs_before=$(cpu_ticks "${hub_pids[@]}")
            tool_before=$(ended_children_ticks) box_before=$(box_ticks) wall_before=$(date +%s%N)
            # shellcheck disable=SC2046
            "$BIN/eventhub-load" --addr "$addrs" --server-pid "$pids" --kind eventhub --token "$TOKEN" \
                --size 256 --reader epoll --label "$label" --json "$json" $(part_args "$part") || status=1
            wall_ns=$(($(date +%s%N) - wall_before)) box=$(($(box_ticks) - box_before))
            tool=$(($(ended_children_ticks) - tool_before))
            nats=$(($(cpu_ticks $nats_pid) - nats_before)) hubs=$(($(cpu_ticks "${hub_pids[@]}") - hubs_before))
            # What went wrong while the load ran, from the logs (kept in
            # $OUT): the hubs' WARN and ERROR lines, nats-server's [WRN] and
            # [ERR], after the lines they had logged when the load started.
            problems=$(for log in "${!log_lines[@]}"; do tail -n +$((log_lines[$log] + 1)) "$log"; done | grep -c -E "$PROBLEM")
            if [[ $problems != 0 ]]; then
                echo "$label: $problems WARN/ERROR lines in ${!log_lines[*]}" >&2
            fi
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$part" "$variant" "$json" "$((nats * 1000000000 / TICKS))" \
                "$(((box - hubs - nats - tool) * 1000000000 / TICKS))" "$wall_ns" "$problems" >>"$ROWS"
            stop_all
        done
    done
done

# The table: each run, then the medians per variant and their ratios to the
# one process (`single`) of the same part.
python3 - "$ROWS" <<'PY'
import json, statistics, sys
rows = []
for line in open(sys.argv[1]):
    part, variant, path, nats_ns, other_ns, wall_ns, problems = line.rstrip("\n").split("\t")
    try:
        r = json.load(open(path))
    except (OSError, ValueError):
        continue
    elapsed = max(r["elapsed_s"], 1e-9)
    rows.append({
        "part": part, "variant": variant,
        "p50_ms": r["latency_us"]["p50"] / 1000, "p99_ms": r["latency_us"]["p99"] / 1000,
        "events_s": r["published"] / elapsed, "deliveries_s": r["deliveries_per_s"],
        "hub_cpu_us": r["server_cpu_us_per_delivery"] or 0.0,
        "tool_cpu_us": r["tool_cpu_us_per_delivery"] or 0.0,
        "nats_us_event": int(nats_ns) / 1000 / max(r["published"], 1),
        "nats_core": int(nats_ns) / 1e9 / elapsed,
        "other_core": max(int(other_ns), 0) / int(wall_ns),
        "lost": r["expected"] - r["deliveries"],
        "bad": r["gaps"] + r["duplicates"] + r["disorder"], "warn": int(problems),
    })
cols = [("p50_ms", "p50 ms", 2), ("p99_ms", "p99 ms", 2), ("events_s", "events/s", 0),
        ("deliveries_s", "deliveries/s", 0), ("hub_cpu_us", "hub cpu/delivery us", 3),
        ("tool_cpu_us", "tool cpu/delivery us", 3), ("nats_us_event", "nats cpu/event us", 1),
        ("nats_core", "nats cores", 2), ("other_core", "other cores", 2)]
def fmt(v, d): return f"{v:,.{d}f}"
def cell(r, k, d):
    # nats-server's figures only where one ran.
    return "-" if r["variant"] == "single" and k.startswith("nats") else fmt(r[k], d)
print()
print("runs (hub cpu: summed over the nodes, over the publishing; nats cpu: over the load tool's whole")
print("run, per event published and per second of publishing; other cores: the box's busy time over the")
print("load tool's run less the hubs', nats-server's and the tool's, i.e. other work on the machine):")
print("| part | variant | " + " | ".join(c[1] for c in cols) + " | lost | gaps+dup+disorder | WARN/ERROR while loaded |")
print("|---" * (len(cols) + 5) + "|")
for r in rows:
    print(f"| {r['part']} | {r['variant']} | " + " | ".join(cell(r, k, d) for k, _, d in cols)
          + f" | {r['lost']} | {r['bad']} | {r['warn']} |")
print()
print("medians, and the ratio to `single` of the same part:")
print("| part | variant | runs | " + " | ".join(c[1] for c in cols) + " |")
print("|---" * (len(cols) + 3) + "|")
for part in dict.fromkeys(r["part"] for r in rows):
    variants = list(dict.fromkeys(r["variant"] for r in rows if r["part"] == part))
    med = {v: {k: statistics.median(r[k] for r in rows if r["part"] == part and r["variant"] == v)
               for k, _, _ in cols} for v in variants}
    base = med.get("single")
    for v in variants:
        n = sum(1 for r in rows if r["part"] == part and r["variant"] == v)
        cells = []
        for k, _, d in cols:
            text = cell({"variant": v, **med[v]}, k, d)
            if base and v != "single" and base[k] and k not in ("nats_us_event", "nats_core", "other_core"):
                text += f" ({med[v][k] / base[k]:.2f}x)"
            cells.append(text)
        print(f"| {part} | {v} | {n} | " + " | ".join(cells) + " |")
PY
echo
echo "every WARN/ERROR line the hubs and nats-server logged in this run (start-ups included), by message:"
cat "$OUT"/hub-*.log "$OUT"/nats-*.log 2>/dev/null | grep -E "$PROBLEM" | sed -E 's/^\[[0-9T:Z-]+ /[/; s/^\[[0-9]+\] [0-9\/]+ [0-9:.]+ //' | sort | uniq -c
echo "whole run: ${SECONDS} s"
exit $status
