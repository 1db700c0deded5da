#!/usr/bin/env bash
# How floe's cost grows with the work (the "Scale" benchmark of the README).
#
# Part 1, breadth: on a fresh 3-process cluster per case, `floe bench` against one node
# with --connections x 1 and x --pipeline in flight, for
#   baseline        1 topic
#   topics          --topics topics (default 1000), all led by the node written to
#   idle            1 topic, --idle client connections (default 5000) held open and silent
#   topics+idle     both
# and a table with entries/s, p50/p99, the node's peak RSS and CPU per acknowledged PUT,
# and each case's ratio to the baseline of the same shape.
#
# Part 2, length: a fresh cluster with --max-segment-entries --long-segment (default
# 100000), one topic written with --long-size-byte payloads (default 100 B, not 1 KiB, so
# that 10 million entries stay near 1 GiB of disk) until --long-entries (default
# 10,000,000) are acknowledged, in runs of --long-chunk each: each run's entries/s beside
# the entries written so far (flat if roll-overs cost nothing as the topic grows). Segment
# leaders rotate over the nodes at each roll-over, so the writes go through node 1 and two
# segments in three are forwarded. Then the median of --reads READs of the first and the
# last offset, the kill -9 of the active segment's leader, the time from its restart to
# /readyz and to answering a READ of the last offset, and the READs again through it.
#
# Usage: tools/floe/bench-scale.sh [--duration 10s] [--warmup 2s] [--connections 16]
#   [--size 1024] [--pipeline 32] [--topics 1000] [--idle 5000] [--long-entries 10000000]
#   [--long-size 100] [--long-segment 100000] [--long-chunk 5s] [--reads 20]
# --long-entries 0 skips part 2.
# FLOE=<binary> runs another floe build. Needs `ulimit -n` of at least 16384 (raised here).
set -euo pipefail
cd "$(dirname "$0")/../.."
FLOE=${FLOE:-./bin/floe}
DURATION=10s WARMUP=2s CONNS=16 SIZE=1024 DEPTH=32 TOPICS=1000 IDLE=5000
LONG_ENTRIES=10000000 LONG_SIZE=100 LONG_SEGMENT=100000 LONG_CHUNK=5s READS=20
usage() { echo "usage: $0 [--duration D] [--warmup D] [--connections N] [--size BYTES] [--pipeline N] [--topics N] [--idle N] [--long-entries N] [--long-size BYTES] [--long-segment N] [--long-chunk D] [--reads N]" >&2; exit 2; }
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || usage
  case $1 in
    --duration) DURATION=$2 ;;
    --warmup) WARMUP=$2 ;;
    --connections) CONNS=$2 ;;
    --size) SIZE=$2 ;;
    --pipeline) DEPTH=$2 ;;
    --topics) TOPICS=$2 ;;
    --idle) IDLE=$2 ;;
    --long-entries) LONG_ENTRIES=$2 ;;
    --long-size) LONG_SIZE=$2 ;;
    --long-segment) LONG_SEGMENT=$2 ;;
    --long-chunk) LONG_CHUNK=$2 ;;
    --reads) READS=$2 ;;
    *) usage ;;
  esac
  shift 2
done

# Thousands of idle connections: the agents (started from here) and floe bench inherit
# this limit. As high as the hard limit allows, up to 65536; 16384 at the least.
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -ge 65536 ]; then ulimit -n 65536; else ulimit -n "$hard"; fi
[ "$(ulimit -n)" -ge 16384 ] || { echo "ulimit -n is $(ulimit -n) (hard $hard); the idle cases need 16384" >&2; exit 1; }

DIR=$(mktemp -d /tmp/floe-scale.XXXXXX)
pids=()
FLOE_AGENT_ARGS=()
cleanup() {
  if [ ${#pids[@]} -gt 0 ]; then kill "${pids[@]}" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT
. tools/floe/bench-lib.sh

# fresh_floe: stops the cluster, wipes its data and starts another.
fresh_floe() { stop_floe; rm -rf "$DIR"/n[123] "$DIR"/n[123].log; start_floe; }
# now_ms: wall clock in milliseconds.
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
# cpu_us JSON: CPU of the node scraped by --http per acknowledged PUT, in microseconds.
cpu_us() { calc "$(sed -n 's/^ *"seconds": \([-0-9.e+]*\).*/\1/p' "$1" | head -1)*1e6/$(field "$1" acked_total)" 1; }
# rss_mib JSON: the node's peak RSS in MiB.
rss_mib() { calc "$(sed -n 's/^ *"bytes": \([0-9]*\).*/\1/p' "$1" | head -1)/1048576" 1; }

# Part 1 results, one line per run: case, shape, entries/s, p50 ms, p99 ms, RSS MiB,
# CPU us/PUT, errors.
ROWS=$DIR/rows
: >"$ROWS"
# scale_run CASE TOPICS IDLE PIPELINE: one floe bench against the leader of topic bench.
scale_run() {
  local json=$DIR/$1-$4.json extra=()
  [ "$2" -gt 1 ] && extra=(--topics "$2" --local-topics)
  echo "== $1: $CONNS x $4 via node $leader, $2 topic(s), $3 idle connections"
  "$FLOE" bench --addr "127.0.0.1:$((17100+leader))" --http "127.0.0.1:$((17200+leader))" --json \
    --connections "$CONNS" --size "$SIZE" --pipeline "$4" --duration "$DURATION" --warmup "$WARMUP" \
    --idle-connections "$3" "${extra[@]}" >"$json"
  printf '%s|%sx%s|%s|%s|%s|%s|%s|%s\n' "$1" "$CONNS" "$4" "$(calc "$(field "$json" throughput_per_second)" 0)" \
    "$(calc "$(field "$json" p50_us)/1000" 2)" "$(calc "$(field "$json" p99_us)/1000" 2)" \
    "$(rss_mib "$json")" "$(cpu_us "$json")" "$(field "$json" errors)" | tee -a "$ROWS" | tr '|' ' ' | sed 's/^/   /'
}

# long_part: one topic of --long-entries entries across roll-overs; see the header.
long_part() {
  echo
  echo "== part 2: topic long, $LONG_ENTRIES entries of $LONG_SIZE B, a segment per $LONG_SEGMENT entries, $CONNS x $DEPTH via node 1 (two segments in three forwarded)"
  FLOE_AGENT_ARGS=(--max-segment-entries "$LONG_SEGMENT")
  fresh_floe
  local n1=127.0.0.1:17101 written=0 json=$DIR/long.json i=0
  "$FLOE" register long --addr "$n1" >/dev/null
  while [ "$written" -lt "$LONG_ENTRIES" ]; do
    i=$((i+1))
    "$FLOE" bench --addr "$n1" --topic long --json --connections "$CONNS" --size "$LONG_SIZE" \
      --pipeline "$DEPTH" --warmup 0s --duration "$LONG_CHUNK" >"$json"
    written=$((written + $(field "$json" acked_total)))
    printf '   run %d: %s entries/s, p99 %s ms; %.2f million entries written, %s segments\n' "$i" \
      "$(calc "$(field "$json" throughput_per_second)" 0)" "$(calc "$(field "$json" p99_us)/1000" 2)" \
      "$(calc "$written/1e6" 2)" "$("$FLOE" state long --addr "$n1" | grep -c '"base"')"
  done
  # Every acknowledged entry is below this offset; a PUT cut off at the end of a run may
  # have written one more.
  local last=$((written - 1)) victim t0 ready
  echo "== READ of one entry at offsets 0 and $last, $READS times each, via node 1"
  "$FLOE" bench --addr "$n1" --topic long --read-offsets "0,$last" --reads "$READS" | tail -n +2
  victim=$("$FLOE" state long --addr "$n1" | sed -n 's/.*"leader_node": \([0-9]*\).*/\1/p')
  local raft_leader
  raft_leader=$("$FLOE" metrics --addr "$n1" | sed -n 's/.*"current_leader": \([0-9]*\).*/\1/p')
  echo "== kill -9 node $victim (leader of the active segment; the Raft leader is node $raft_leader), then restart it"
  if [ "$victim" = "$raft_leader" ]; then
    echo "   (the times below include the election of a new Raft leader: --raft-heartbeat-timeout, 1 s, and more)"
  fi
  kill -9 "${node_pid[$victim]}"
  wait "${node_pid[$victim]}" 2>/dev/null || true
  local join=
  [ "$victim" -gt 1 ] && join=127.0.0.1:17001
  t0=$(now_ms)
  start_node "$victim" "$join"
  ready=
  for _ in $(seq 1 6000); do
    curl -fsS "http://127.0.0.1:$((17200+victim))/readyz" >/dev/null 2>&1 && { ready=$(now_ms); break; }
    sleep 0.02
  done
  [ -n "$ready" ] || { echo "node $victim not ready 120 s after its restart; log in $DIR/n$victim.log" >&2; exit 1; }
  echo "   /readyz answered $((ready - t0)) ms after the start"
  local read=
  for _ in $(seq 1 6000); do
    "$FLOE" read long "$last" -n 1 --addr "127.0.0.1:$((17100+victim))" >/dev/null 2>&1 && { read=$(now_ms); break; }
    sleep 0.02
  done
  [ -n "$read" ] || { echo "node $victim answered no READ of offset $last 120 s after its restart" >&2; exit 1; }
  echo "   READ of offset $last answered $((read - t0)) ms after the start (floe read: a process per try)"
  echo "== READ of one entry at offsets 0 and $last, $READS times each, via the restarted node $victim"
  "$FLOE" bench --addr "127.0.0.1:$((17100+victim))" --topic long --read-offsets "0,$last" --reads "$READS" | tail -n +2
}

echo "== machine: $(nproc) cores, $(grep MemTotal /proc/meminfo | awk '{printf "%.0f GiB", $2/1048576}'), $(uname -sr), ulimit -n $(ulimit -n)"
echo "== $CONNS connections, $SIZE-byte payloads, $WARMUP warm-up, $DURATION measured per run; floe: $FLOE"
for c in "baseline 1 0" "topics $TOPICS 0" "idle 1 $IDLE" "topics+idle $TOPICS $IDLE"; do
  set -- $c
  fresh_floe
  scale_run "$1" "$2" "$3" 1
  scale_run "$1" "$2" "$3" "$DEPTH"
done

echo
echo "== part 1: cost against the work (RSS, CPU: the node written to; ratios: to the baseline of the same shape)"
{
  echo "case|shape|entries/s|p50 ms|p99 ms|peak RSS MiB|CPU us/PUT|errors|entries/s ratio|RSS ratio|CPU ratio"
  while IFS='|' read -r name shape tput p50 p99 rss cpu errs; do
    IFS='|' read -r _ _ btput _ _ brss bcpu _ < <(awk -F'|' -v s="$shape" '$1 == "baseline" && $2 == s' "$ROWS")
    echo "$name|$shape|$tput|$p50|$p99|$rss|$cpu|$errs|$(calc "$tput/$btput" 2)|$(calc "$rss/$brss" 2)|$(calc "$cpu/$bcpu" 2)"
  done <"$ROWS"
} | table

if [ "$LONG_ENTRIES" -gt 0 ]; then long_part; fi
