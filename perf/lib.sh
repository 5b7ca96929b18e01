# What the perf/ scripts share: the hub's benchmark config, starting a
# process and waiting for the line that says it is ready, and stopping it
# (TERM, then KILL after 5 s). Sourced from the repository root
# (`source perf/lib.sh`).

# bench_config QUEUE SNDBUF: the benchmark hub's TOML on stdout (no per-IP
# limits, the given send queue and socket buffer, one admin principal with
# $TOKEN); callers append their own sections.
bench_config() {
    cat <<TOML
[hub]
# Benchmarks connect many clients from few addresses.
max_connections_per_ip = 0
connect_rate_per_ip = 0.0
[limits]
send_queue_bytes = $1
socket_send_buffer_bytes = $2
[[principals]]
name = "bench"
token = "$TOKEN"
admin = true
publish = ["*"]
TOML
}

# wait_for_line LOG PATTERN NAME: waits up to 10 s for PATTERN in LOG.
wait_for_line() {
    for _ in $(seq 1 100); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "$3 did not start; see $1" >&2
    return 1
}

# stop_pid PID: SIGTERM, up to 5 s to exit, then SIGKILL; reaped.
stop_pid() {
    kill "$1" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}

# The one server a script runs at a time: stop_server stops $server_pid.
server_pid=""
stop_server() {
    [[ -n $server_pid ]] || return
    stop_pid "$server_pid"
    server_pid=""
}
