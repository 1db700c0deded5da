#!/usr/bin/env bash
# The cluster benchmark of the README, floe and NATS JetStream side by side in one run.
#
# Starts a 3-process floe cluster on loopback and runs `floe bench` (16 connections, 1 KiB
# PUTs, every entry fsynced before OK) with one PUT in flight per connection and with 32,
# against the segment leader of the bench topic, then with one in flight against a
# non-leader (forwarded). When ./bin/nats-server exists (make nats) it then runs
# tools/natsbench, the same client pattern, against a fresh single nats-server per run
# (R1 file stream), with `sync_interval: always` (one fsync per message before the ack)
# and with the default (no fsync before the ack), and prints a table with the ratios
# floe/JetStream. With replication factor 1 it also runs floe with --unsafe-no-fsync
# (acknowledged before fdatasync, like JetStream's default) at the same shapes, on a
# fresh cluster: what the rest of floe's path costs, fsync aside. With --replicas N above
# 1 it runs floe with replication factor 1 too, on a fresh cluster, and prints the ratio
# RN/R1 and R1/JetStream RN: R1 is the ceiling of RN, measured in the same run.
#
# The runs go shape by shape, 16 x 1 first (floe, then JetStream), then 16 x 32, each floe
# configuration on a fresh cluster. Before each measured run the disk is probed (100 4 KiB
# O_DSYNC writes) and, if it syncs more than 25% slower than the fastest probe of the run
# so far (this VM's disk does for a while after much writing), the run waits for it, at
# most 90 s; each row shows the probe.
#
# Server CPU per acknowledged write: the floe segment leader's process_cpu_seconds_total
# from its /metrics, nats-server's utime+stime from /proc/<pid>/stat, each read before and
# after a run and divided by every write acknowledged in the run (warm-up included).
# Peak RSS: floe bench's sampling of the leader's /metrics during the run; nats-server's
# VmHWM (it is started afresh for each run).
#
# Usage: tools/floe/bench-cluster.sh [--duration 10s] [--warmup 2s] [--connections 16]
#                                    [--size 1024] [--pipeline 32] [--replicas 1]
# FLOE=<binary> runs the agents of another floe build (to compare builds; the bench client
# stays ./bin/floe, or BENCH=<binary>); NATS_SERVER=<binary> another nats-server.
set -euo pipefail
cd "$(dirname "$0")/../.."
FLOE=${FLOE:-./bin/floe}
BENCH=${BENCH:-./bin/floe}
NATS_SERVER=${NATS_SERVER:-./bin/nats-server}
DURATION=10s WARMUP=2s CONNS=16 SIZE=1024 DEPTH=32 REPLICAS=1
usage() { echo "usage: $0 [--duration D] [--warmup D] [--connections N] [--size BYTES] [--pipeline N] [--replicas N]" >&2; exit 2; }
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || usage
  case $1 in
    --duration) DURATION=$2 ;;
    --warmup) WARMUP=$2 ;;
    --connections) CONNS=$2 ;;
    --size) SIZE=$2 ;;
    --pipeline) DEPTH=$2 ;;
    --replicas) REPLICAS=$2 ;;
    *) usage ;;
  esac
  shift 2
done

DIR=$(mktemp -d /tmp/floe-bench.XXXXXX)
pids=()
# One segment holds every run's writes (16 x 32 at 60,000/s writes 700 MiB in 12 s), so
# the segment leader stays the node the leader rows measure: a roll-over moves a topic's
# next segment to another node, and its writes would be forwarded from then on.
# --replicas N: the bench topic's replication factor (--default-replication-factor of
# the agents): each PUT is acknowledged once a majority of N nodes fsynced it.
FLOE_AGENT_ARGS=(--max-segment-bytes $((16 << 30)) --max-segment-entries 100000000 --default-replication-factor "$REPLICAS")
nats_pid=
cleanup() {
  if [ -n "$nats_pid" ]; then kill "$nats_pid" 2>/dev/null || true; fi
  if [ ${#pids[@]} -gt 0 ]; then kill "${pids[@]}" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT

. tools/floe/bench-lib.sh

# Results, one line per run: name, entries/s, mean ms, p50 ms, p99 ms, Little ratio,
# server CPU us per write, server peak RSS MiB, errors, the disk's probe before the run.
ROWS=$DIR/rows
: >"$ROWS"
row() { # row NAME JSON CPU_SECONDS RSS_MIB
  local n mean
  n=$(field "$2" acked_total)
  mean=$(field "$2" mean_us)
  printf '%s|%s|%s|%s|%s|%s|%s|%s|%s|%s\n' "$1" "$(calc "$(field "$2" throughput_per_second)" 0)" \
    "$(calc "$mean/1000" 2)" "$(calc "$(field "$2" p50_us)/1000" 2)" "$(calc "$(field "$2" p99_us)/1000" 2)" \
    "$(calc "$(field "$2" little_ratio)" 3)" "$(calc "$3*1e6/$n" 1)" "$4" "$(field "$2" errors)" "$probe_us" >>"$ROWS"
  printf '   %s entries/s, mean %s ms, p50 %s ms, p99 %s ms, p999 %s ms; Little: in flight %s, throughput x mean %s; server CPU %s us/write; %s errors\n' \
    "$(calc "$(field "$2" throughput_per_second)" 0)" "$(calc "$mean/1000" 2)" "$(calc "$(field "$2" p50_us)/1000" 2)" \
    "$(calc "$(field "$2" p99_us)/1000" 2)" "$(calc "$(field "$2" p999_us)/1000" 2)" "$(field "$2" in_flight)" \
    "$(calc "$(field "$2" little_in_flight)" 1)" "$(calc "$3*1e6/$n" 1)" "$(field "$2" errors)"
}

# floe_run NAME NODE PIPELINE: floe bench through NODE; the row's CPU and RSS are the
# segment leader's. Through a non-leader, that node's CPU per PUT is printed beside it.
# With --replicas above 1 the row's CPU is that of all three nodes (the followers
# write every entry too), as it is for the three servers of JetStream R3.
cpu_of_run() {
  if [ "$REPLICAS" -gt 1 ]; then
    calc "$(floe_cpu 1)+$(floe_cpu 2)+$(floe_cpu 3)" 3
  else
    floe_cpu "$leader"
  fi
}
floe_run() {
  local json=$DIR/$1.json before after ebefore eafter rss
  echo "== $1: floe bench, $CONNS x $3 via node $2 (segment leader: node $leader)"
  rest_disk
  before=$(cpu_of_run); ebefore=$(floe_cpu "$2")
  "$BENCH" bench --addr "127.0.0.1:$((17100+$2))" --http "127.0.0.1:$((17200+leader))" --json \
    --connections "$CONNS" --size "$SIZE" --pipeline "$3" --duration "$DURATION" --warmup "$WARMUP" >"$json"
  after=$(cpu_of_run); eafter=$(floe_cpu "$2")
  rss=$(sed -n 's/^ *"bytes": \([0-9]*\).*/\1/p' "$json" | head -1)
  row "$1" "$json" "$(calc "$after-$before" 3)" "$(calc "${rss:-0}/1048576" 1)"
  if [ "$2" != "$leader" ]; then
    echo "   node $2 (forwarding): CPU $(calc "($eafter-$ebefore)*1e6/$(field "$json" acked_total)" 1) us/write"
  fi
}

# nats_ticks: nats-server's utime+stime in clock ticks (fields 14 and 15 of its stat,
# counted after the parenthesised command name).
nats_ticks() { sed 's/^.*) //' "/proc/$nats_pid/stat" | awk '{print $12 + $13}'; }

# nats_cluster_run NAME PIPELINE: three fresh nats-servers in one cluster, each with
# sync_interval: always, and one run against a stream of $REPLICAS replicas; the row's
# CPU is the three servers' and its RSS the largest VmHWM.
nats_cluster_run() {
  local json=$DIR/$1.json before=0 after=0 rss=0 i up= cpids=()
  for i in 1 2 3; do
    local routes="" j
    for j in 1 2 3; do [ "$j" != "$i" ] && routes="$routes nats://127.0.0.1:$((17500+j))"; done
    printf 'server_name: n%s\nlisten: 127.0.0.1:%s\nhttp: 127.0.0.1:%s\njetstream {\n  store_dir: "%s"\n  sync_interval: always\n}\ncluster {\n  name: bench\n  listen: 127.0.0.1:%s\n  routes: [%s]\n}\n' \
      "$i" $((17400+10*i+1)) $((17400+10*i+2)) "$DIR/$1.js$i" $((17500+i)) "$(echo $routes | tr ' ' ',')" >"$DIR/$1.$i.conf"
    "$NATS_SERVER" -c "$DIR/$1.$i.conf" >"$DIR/$1.$i.log" 2>&1 &
    cpids+=($!)
  done
  for _ in $(seq 1 300); do
    curl -fsS "http://127.0.0.1:17412/healthz" >/dev/null 2>&1 && curl -fsS "http://127.0.0.1:17422/healthz" >/dev/null 2>&1 && \
      curl -fsS "http://127.0.0.1:17432/healthz" >/dev/null 2>&1 && { up=1; break; }
    sleep 0.1
  done
  [ -n "$up" ] || { echo "the nats-server cluster did not start:" >&2; cat "$DIR/$1.1.log" >&2; kill "${cpids[@]}"; exit 1; }
  echo "== $1: natsbench, $CONNS x $2, 3 nats-servers $("$NATS_SERVER" --version | cut -d' ' -f2), stream R$REPLICAS, sync_interval: always"
  rest_disk
  for i in 1 2 3; do before=$(( before + $(sed 's/^.*) //' "/proc/${cpids[$((i-1))]}/stat" | awk '{print $12 + $13}') )); done
  # The stream needs a JetStream meta leader: natsbench is retried until one is elected.
  local ok=
  for _ in $(seq 1 50); do
    if ./bin/natsbench -url nats://127.0.0.1:17411 -json -note "R$REPLICAS sync always" -replicas "$REPLICAS" \
      -connections "$CONNS" -size "$SIZE" -pipeline "$2" -duration "$DURATION" -warmup "$WARMUP" >"$json" 2>"$DIR/$1.err"; then ok=1; break; fi
    sleep 0.2
  done
  [ -n "$ok" ] || { echo "natsbench against the nats-server cluster failed:" >&2; cat "$DIR/$1.err" >&2; kill "${cpids[@]}"; exit 1; }
  for i in 1 2 3; do
    after=$(( after + $(sed 's/^.*) //' "/proc/${cpids[$((i-1))]}/stat" | awk '{print $12 + $13}') ))
    local hwm; hwm=$(awk '/^VmHWM:/{print $2}' "/proc/${cpids[$((i-1))]}/status")
    [ "$hwm" -gt "$rss" ] && rss=$hwm
  done
  kill "${cpids[@]}"; wait "${cpids[@]}" 2>/dev/null || true
  row "$1" "$json" "$(calc "($after-$before)/$(getconf CLK_TCK)" 3)" "$(calc "$rss/1024" 1)"
}

# nats_run NAME SYNC PIPELINE: a fresh nats-server (SYNC: always or default) and one run.
nats_run() {
  local json=$DIR/$1.json conf=$DIR/$1.conf store=$DIR/$1.js before after rss sync= up=
  [ "$2" = always ] && sync="sync_interval: always"
  printf 'listen: 127.0.0.1:17401\nhttp: 127.0.0.1:17402\njetstream {\n  store_dir: "%s"\n  %s\n}\n' "$store" "$sync" >"$conf"
  "$NATS_SERVER" -c "$conf" >"$DIR/$1.log" 2>&1 &
  nats_pid=$!
  for _ in $(seq 1 100); do
    curl -fsS http://127.0.0.1:17402/healthz >/dev/null 2>&1 && { up=1; break; }
    sleep 0.1
  done
  [ -n "$up" ] || { echo "nats-server did not start:" >&2; cat "$DIR/$1.log" >&2; exit 1; }
  # The server's own word on whether it fsyncs each message before the ack.
  local always
  always=$(curl -fsS http://127.0.0.1:17402/varz | sed -n 's/.*"sync_always": \(true\).*/\1/p')
  echo "== $1: natsbench, $CONNS x $3, nats-server $("$NATS_SERVER" --version | cut -d' ' -f2), sync_always=${always:-false}"
  rest_disk
  before=$(nats_ticks)
  ./bin/natsbench -url nats://127.0.0.1:17401 -json -note "sync $2" \
    -connections "$CONNS" -size "$SIZE" -pipeline "$3" -duration "$DURATION" -warmup "$WARMUP" >"$json"
  after=$(nats_ticks)
  rss=$(awk '/^VmHWM:/{print $2}' "/proc/$nats_pid/status")
  kill "$nats_pid"; wait "$nats_pid" 2>/dev/null || true; nats_pid=
  rm -rf "$store"
  row "$1" "$json" "$(calc "($after-$before)/$(getconf CLK_TCK)" 3)" "$(calc "$rss/1024" 1)"
}

# fresh_floe FLAG...: stops the cluster and starts a new one, with empty data dirs, whose
# agents get the script's flags and FLAG... (later flags win over the same flag earlier).
BASE_AGENT_ARGS=("${FLOE_AGENT_ARGS[@]}")
fresh_floe() {
  stop_floe
  rm -rf "$DIR"/n1 "$DIR"/n2 "$DIR"/n3
  FLOE_AGENT_ARGS=("${BASE_AGENT_ARGS[@]}" "$@")
  start_floe
}

nats=
if [ -x "$NATS_SERVER" ]; then
  if go build -C tools/natsbench -o ../../bin/natsbench . 2>"$DIR/natsbench-build.log"; then
    nats=1
  else
    echo "== JetStream skipped: tools/natsbench does not build:"; cat "$DIR/natsbench-build.log"
  fi
else
  echo "== JetStream skipped: no $NATS_SERVER (make nats installs it)"
fi

# shape_runs DEPTH: every run of one shape, CONNS x DEPTH: floe through the segment leader
# (and, at 1, through a node that forwards), floe's second configuration on a fresh
# cluster, then JetStream. The shapes run one after the other, 16 x 1 first, so that the
# pipelined runs, which write far more, come after every request/response run.
shape_runs() {
  local d=$1 shape="${CONNS}x$1"
  fresh_floe
  floe_run "floe-leader-$shape" "$leader" "$d"
  if [ "$d" = 1 ]; then floe_run "floe-forwarded-$shape" "$other" 1; fi
  if [ "$REPLICAS" = 1 ]; then
    # The same writes on a fresh cluster whose nodes acknowledge without fdatasync
    # (--unsafe-no-fsync): what floe's path costs without the fsync, against JetStream's
    # default, which does not fsync before its ack either. Not a mode to run data in.
    fresh_floe --unsafe-no-fsync
    floe_run "floe-nofsync-$shape" "$leader" "$d"
  else
    # The same writes with replication factor 1 on a fresh cluster: the ceiling of the
    # replicated rows (a replicated append does all an unreplicated one does, and more),
    # measured in the same script run so that their ratio holds.
    fresh_floe --default-replication-factor 1
    floe_run "floe-r1-$shape" "$leader" "$d"
  fi
  # The floe nodes stop first, so that JetStream has the machine floe had.
  stop_floe
  if [ -n "$nats" ]; then
    if [ "$REPLICAS" -gt 1 ]; then
      nats_cluster_run "jetstream-r$REPLICAS-always-$shape" "$d"
    else
      nats_run "jetstream-default-$shape" default "$d"
      nats_run "jetstream-always-$shape" always "$d"
    fi
  fi
}

echo "== machine: $(nproc) cores, $(grep MemTotal /proc/meminfo | awk '{printf "%.0f GiB", $2/1048576}'), $(uname -sr), $(go version | cut -d' ' -f3)"
echo "== $CONNS connections, $SIZE-byte payloads, $WARMUP warm-up, $DURATION measured per run; floe: $FLOE, replication factor $REPLICAS"
# The shapes: one in flight per connection, and --pipeline (unless that is 1 too).
shapes=("${CONNS}x1")
if [ "$DEPTH" != 1 ]; then shapes+=("${CONNS}x$DEPTH"); fi
for shape in "${shapes[@]}"; do shape_runs "${shape#*x}"; done

echo
if [ "$REPLICAS" -gt 1 ]; then
  echo "== results (server CPU: all three floe nodes', or the three nats-servers'; peak RSS: the floe segment leader's, or the largest nats-server's)"
else
  echo "== results (server CPU and peak RSS: the floe segment leader's, also for the forwarded run, or nats-server's)"
fi
{
  echo "run|entries/s|mean ms|p50 ms|p99 ms|Little ratio|server CPU us/write|server peak RSS MiB|errors|disk sync us"
  cat "$ROWS"
} | table
get() { awk -F'|' -v n="$1" -v c="$2" '$1 == n { print $c }' "$ROWS"; }
if [ -n "$nats" ]; then
  echo
  echo "== floe / JetStream (entries/s: above 1 is floe faster; CPU per write: below 1 is floe cheaper)"
  {
    echo "floe run|JetStream run|entries/s ratio|CPU per write ratio"
    syncs=(always default)
    [ "$REPLICAS" -gt 1 ] && syncs=("r$REPLICAS-always")
    for sync in "${syncs[@]}"; do
      for shape in "${shapes[@]}"; do
        f=floe-leader-$shape j=jetstream-$sync-$shape
        echo "$f|$j|$(calc "$(get "$f" 2)/$(get "$j" 2)" 2)|$(calc "$(get "$f" 7)/$(get "$j" 7)" 2)"
      done
    done
    if [ "$REPLICAS" = 1 ]; then
      for shape in "${shapes[@]}"; do
        f=floe-nofsync-$shape j=jetstream-default-$shape
        echo "$f|$j|$(calc "$(get "$f" 2)/$(get "$j" 2)" 2)|$(calc "$(get "$f" 7)/$(get "$j" 7)" 2)"
      done
    else
      for shape in "${shapes[@]}"; do
        f=floe-r1-$shape j=jetstream-r$REPLICAS-always-$shape
        echo "$f|$j|$(calc "$(get "$f" 2)/$(get "$j" 2)" 2)|"
      done
    fi
  } | table
fi
if [ "$REPLICAS" -gt 1 ]; then
  echo
  echo "== replication factor $REPLICAS / 1, floe in this run (entries/s)"
  {
    echo "R$REPLICAS run|R1 run|entries/s ratio"
    for shape in "${shapes[@]}"; do
      echo "floe-leader-$shape|floe-r1-$shape|$(calc "$(get "floe-leader-$shape" 2)/$(get "floe-r1-$shape" 2)" 2)"
    done
  } | table
fi
