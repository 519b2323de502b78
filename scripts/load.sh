#!/usr/bin/env bash
# Throughput of the axum example with and without the metrics layer: wrk for 10 s
# each against 127.0.0.1, in ROUNDS alternating rounds (default 3), then the ratio of
# the medians. Needs wrk (Debian package `wrk`).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
PORT="${PORT:-3917}"
DURATION="${DURATION:-10s}"
ROUNDS="${ROUNDS:-3}"
URL="http://127.0.0.1:${PORT}/users/7"

cargo build --release --quiet --example axum

server=""
stop_server() {
    if [ -n "$server" ]; then
        kill "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
        server=""
    fi
}
trap stop_server EXIT

# Prints the requests per second of one wrk run against the example.
measure() {
    METRICS="$1" BIND="127.0.0.1:${PORT}" target/release/examples/axum >/dev/null &
    server=$!
    for _ in $(seq 1 100); do
        if curl -fs "$URL" >/dev/null 2>&1; then break; fi
        sleep 0.05
    done
    wrk --threads 1 --connections 32 --duration "$DURATION" --timeout 2s "$URL" |
        awk '/Requests\/sec/ { print $2 }'
    stop_server
}

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

withouts=""
withs=""
for round in $(seq 1 "$ROUNDS"); do
    # Alternating keeps drift of a shared machine from favouring one side.
    withouts="$withouts $(measure off)"
    withs="$withs $(measure on)"
    echo "round $round: without ${withouts##* }, with ${withs##* } requests/s"
done
without=$(echo "$withouts" | tr ' ' '\n' | grep . | median)
with=$(echo "$withs" | tr ' ' '\n' | grep . | median)
echo "median without the layer: ${without} requests/s"
echo "median with the layer:    ${with} requests/s"
awk -v a="$with" -v b="$without" 'BEGIN { printf "throughput ratio (with / without): %.3f\n", a / b }'
