#!/usr/bin/env bash
# Starts a 3-process floe cluster on loopback, runs `floe bench` against the segment
# leader of the bench topic and against a non-leader (forwarded), and prints each node's
# peak RSS. Usage: tools/floe/bench-cluster.sh [extra floe bench flags]
set -euo pipefail
cd "$(dirname "$0")/../.."
FLOE=${FLOE:-./bin/floe}
DIR=$(mktemp -d /tmp/floe-bench.XXXXXX)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
for i in 1 2 3; do
  join=(); [ "$i" -gt 1 ] && join=(--join 127.0.0.1:17001)
  "$FLOE" agent --node-id "$i" --data-dir "$DIR/n$i" --raft-port $((17000+i)) \
    --client-port $((17100+i)) --http-port $((17200+i)) --log-level warn "${join[@]}" \
    >"$DIR/n$i.log" 2>&1 &
  pids+=($!)
done
ALL=127.0.0.1:17101,127.0.0.1:17102,127.0.0.1:17103
HTTP=127.0.0.1:17201,127.0.0.1:17202,127.0.0.1:17203
for _ in $(seq 1 200); do
  "$FLOE" metrics --addr 127.0.0.1:17103 2>/dev/null | grep -q '"current_leader": [0-9]' && \
  "$FLOE" register bench --addr "$ALL" >/dev/null 2>&1 && break
  sleep 0.1
done
leader=$("$FLOE" state bench --addr "$ALL" | sed -n 's/.*"leader_node": \([0-9]*\).*/\1/p')
other=$(( leader % 3 + 1 ))
echo "== machine: $(nproc) cores, $(grep MemTotal /proc/meminfo | awk '{printf "%.0f GiB", $2/1048576}'), $(uname -sr), $(go version | cut -d' ' -f3)"
echo "== client on the segment leader (node $leader)"
"$FLOE" bench --addr 127.0.0.1:$((17100+leader)) --http "$HTTP" "$@"
echo "== client on a non-leader (node $other, forwarded to node $leader)"
"$FLOE" bench --addr 127.0.0.1:$((17100+other)) --http "$HTTP" "$@"
