# Shell functions the cluster benchmarks share (sourced by bench-cluster.sh and
# bench-scale.sh). The caller sets FLOE (the floe binary), DIR (a scratch directory) and
# pids=() (the agents started, for its cleanup); FLOE_AGENT_ARGS=(...) adds flags to
# every agent it starts.

# field FILE KEY: a top-level number of a bench's JSON report.
field() { sed -n "s/^  \"$2\": \([-0-9.e+]*\),\{0,1\}\$/\1/p" "$1"; }
# table: '|'-separated lines aligned in columns.
table() { if command -v column >/dev/null; then column -t -s '|'; else tr '|' '\t'; fi; }
# calc EXPR [DECIMALS]: floating-point arithmetic.
calc() { awk "BEGIN { printf \"%.${2:-1}f\", $1 }"; }

# start_node I [JOIN]: starts agent I (ports 1700I raft, 1710I client, 1720I HTTP) on
# $DIR/nI, joining JOIN if given; its pid is node_pid[I] and joins pids.
declare -A node_pid
start_node() {
  local join=()
  [ -n "${2:-}" ] && join=(--join "$2")
  "$FLOE" agent --node-id "$1" --data-dir "$DIR/n$1" --raft-port $((17000+$1)) \
    --client-port $((17100+$1)) --http-port $((17200+$1)) --log-level warn \
    ${FLOE_AGENT_ARGS[@]+"${FLOE_AGENT_ARGS[@]}"} "${join[@]}" >>"$DIR/n$1.log" 2>&1 &
  node_pid[$1]=$!
  pids+=($!)
}

# start_floe: a 3-node cluster on loopback with the topic bench registered; sets leader
# (the node leading bench's active segment) and other (a node that does not).
start_floe() {
  start_node 1
  start_node 2 127.0.0.1:17001
  start_node 3 127.0.0.1:17001
  local all=127.0.0.1:17101,127.0.0.1:17102,127.0.0.1:17103
  for _ in $(seq 1 200); do
    "$FLOE" metrics --addr 127.0.0.1:17103 2>/dev/null | grep -q '"current_leader": [0-9]' && \
    "$FLOE" register bench --addr "$all" >/dev/null 2>&1 && break
    sleep 0.1
  done
  leader=$("$FLOE" state bench --addr "$all" | sed -n 's/.*"leader_node": \([0-9]*\).*/\1/p')
  [ -n "$leader" ] || { echo "no segment leader for topic bench; node logs in $DIR" >&2; exit 1; }
  other=$(( leader % 3 + 1 ))
}

# stop_floe: stops every agent started (SIGTERM) and waits for them.
stop_floe() {
  if [ ${#pids[@]} -gt 0 ]; then kill "${pids[@]}" 2>/dev/null || true; wait "${pids[@]}" 2>/dev/null || true; fi
  pids=()
}

# floe_cpu NODE: the node's process_cpu_seconds_total.
floe_cpu() { curl -fsS "http://127.0.0.1:$((17200+$1))/metrics" | awk '/^process_cpu_seconds_total /{print $2}'; }

# fsync_probe: microseconds per 4 KiB O_DSYNC overwrite (one write and one cache flush,
# what an fdatasync of a small group commit costs), over 100 of them in a file of $DIR:
# how fast the disk syncs right now.
fsync_probe() {
  [ -f "$DIR/fsync-probe" ] || dd if=/dev/zero of="$DIR/fsync-probe" bs=4096 count=100 conv=fsync status=none
  dd if=/dev/zero of="$DIR/fsync-probe" bs=4096 count=100 oflag=dsync conv=notrunc 2>&1 |
    awk '/copied/ { printf "%.0f", $(NF-3) * 1e6 / 100 }'
}

# rest_disk: called before each measured run. A virtual disk may sync slower for a while
# after a run that wrote much (this project's test VM's does, for a minute or more), which
# would handicap whichever run comes next: this waits, probing every 5 s and for at most
# 90 s, until fsync_probe is back within 25% of the fastest probe of the script run so
# far, and sets probe_us (printed in each row) and rested (the seconds waited).
probe_base=
rest_disk() {
  rested=0
  probe_us=$(fsync_probe)
  if [ -z "$probe_base" ] || [ "$probe_us" -lt "$probe_base" ]; then probe_base=$probe_us; fi
  while [ "$probe_us" -gt $((probe_base * 5 / 4)) ] && [ "$rested" -lt 90 ]; do
    sleep 5
    rested=$((rested + 5))
    probe_us=$(fsync_probe)
    if [ "$probe_us" -lt "$probe_base" ]; then probe_base=$probe_us; fi
  done
  echo "   disk before the run: ${probe_us} us per 4 KiB write and flush (fastest probe so far ${probe_base} us; rested ${rested} s)"
}
