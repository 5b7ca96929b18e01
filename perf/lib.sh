# What the perf/ scripts share: starting a process and waiting for the line
# that says it is ready, and stopping it (TERM, then KILL after 5 s).
# Sourced from the repository root (`source perf/lib.sh`).

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
