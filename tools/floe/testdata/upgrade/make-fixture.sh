#!/usr/bin/env bash
# make-fixture.sh: build prev-release.tar.gz, "a data dir and a bucket written by the
# previous release", for upgrade tests (see README.md next to this script).
#
# Usage: make-fixture.sh <floe binary built from the previous release> [output tarball]
#
# It runs ONE floe node on loopback with a file:// archive in a temp dir, writes the
# topics below through the CLI, waits until the sealed segments are archived and a
# metadata snapshot holding the final state is in the bucket, stops the node with
# SIGTERM, waits for it to exit, and packs data/ and bucket/ into the tarball.
# Every wait is a poll of a condition with a deadline; no sleep is a synchronisation.
#
# Ports (loopback; override with the environment, they must be free):
#   FIXTURE_RAFT_PORT (37611), FIXTURE_CLIENT_PORT (37612), FIXTURE_HTTP_PORT (37613)
# Needs: bash, curl, jq, tar, gzip.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
	echo "usage: $0 <floe binary of the previous release> [output.tar.gz]" >&2
	exit 2
fi
FLOE=$(realpath "$1")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=$(realpath -m "${2:-$HERE/prev-release.tar.gz}")
[[ -x $FLOE ]] || { echo "not an executable: $FLOE" >&2; exit 2; }
for tool in curl jq tar gzip; do
	command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 2; }
done

NODE_ID=1
RAFT_PORT=${FIXTURE_RAFT_PORT:-37611}
CLIENT_PORT=${FIXTURE_CLIENT_PORT:-37612}
HTTP_PORT=${FIXTURE_HTTP_PORT:-37613}
ORDERS_ENTRIES=350   # payload orders-<offset>
ORDERS_SEGMENT_ENTRIES=100
ORDERS_GETS=5        # shared cursor of orders ends at 5
KEEP_ENTRIES=20      # payload keep-<offset>
CLIENT=127.0.0.1:$CLIENT_PORT
HTTP=127.0.0.1:$HTTP_PORT

WORK=$(mktemp -d "${TMPDIR:-/tmp}/floe-fixture.XXXXXX")
AGENT_PID=""
cleanup() {
	if [[ -n $AGENT_PID ]] && kill -0 "$AGENT_PID" 2>/dev/null; then
		kill -KILL "$AGENT_PID" 2>/dev/null || true
		wait "$AGENT_PID" 2>/dev/null || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT

log() { echo "make-fixture: $*" >&2; }
die() {
	log "FAILED: $*"
	if [[ -f $WORK/agent.log ]]; then
		log "agent log (last 40 lines):"
		tail -n 40 "$WORK/agent.log" >&2
	fi
	exit 1
}

# wait_for <seconds> <description> <command...>: poll the command until it succeeds.
wait_for() {
	local secs=$1 what=$2
	shift 2
	local deadline=$((SECONDS + secs))
	until "$@"; do
		if [[ -n $AGENT_PID ]] && ! kill -0 "$AGENT_PID" 2>/dev/null; then
			die "the agent exited while waiting for: $what"
		fi
		((SECONDS < deadline)) || die "timed out after ${secs}s waiting for: $what"
		sleep 0.1 # poll period, not a synchronisation
	done
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$RAFT_PORT" "$CLIENT_PORT" "$HTTP_PORT"; do
	port_free "$p" || die "port $p on 127.0.0.1 is in use (set FIXTURE_*_PORT)"
done

mkdir -p "$WORK/data" "$WORK/bucket"
AGENT_ARGS=(
	agent
	--node-id "$NODE_ID"
	--data-dir "$WORK/data"
	--raft-host 127.0.0.1 --raft-port "$RAFT_PORT"
	--client-host 127.0.0.1 --client-port "$CLIENT_PORT"
	--http-port "$HTTP_PORT"
	--archive "file://$WORK/bucket"
	--meta-snapshot-interval 500ms
)
log "floe $FLOE, work dir $WORK"
log "starting: floe ${AGENT_ARGS[*]}"
"$FLOE" "${AGENT_ARGS[@]}" >"$WORK/agent.log" 2>&1 &
AGENT_PID=$!

ready() { curl -sf "http://$HTTP/readyz" >/dev/null 2>&1; }
wait_for 30 "the node to be ready (leader, member)" ready

# orders: small segments, so that three are sealed and archived and one is active.
"$FLOE" topic create orders --max-segment-entries "$ORDERS_SEGMENT_ENTRIES" --http "$HTTP" >/dev/null ||
	die "topic create orders"
for ((i = 0; i < ORDERS_ENTRIES; i++)); do
	got=$("$FLOE" put orders "orders-$i" --addr "$CLIENT") || die "put orders-$i"
	[[ $got == "OK $i" ]] || die "put orders-$i answered '$got', want 'OK $i'"
done
# keep: the node's default settings.
"$FLOE" topic create keep --http "$HTTP" >/dev/null || die "topic create keep"
for ((i = 0; i < KEEP_ENTRIES; i++)); do
	got=$("$FLOE" put keep "keep-$i" --addr "$CLIENT") || die "put keep-$i"
	[[ $got == "OK $i" ]] || die "put keep-$i answered '$got', want 'OK $i'"
done
# The shared cursor of orders: a few GETs.
for ((i = 0; i < ORDERS_GETS; i++)); do
	got=$("$FLOE" get orders --addr "$CLIENT") || die "get orders"
	[[ $got == "orders-$i" ]] || die "GET $i of orders answered '$got', want 'orders-$i'"
done

state() { "$FLOE" state "$1" --json --addr "$CLIENT"; }
SEALED=$(((ORDERS_ENTRIES - 1) / ORDERS_SEGMENT_ENTRIES)) # 3 sealed, the 4th active
orders_archived() {
	state orders | jq -e --argjson n "$SEALED" --argjson eo "$ORDERS_ENTRIES" --argjson cur "$ORDERS_GETS" '
		.end_offset == $eo and .cursor == $cur and
		([.segments[] | select(.state == "archived")] | length) == $n and
		([.segments[] | select(.state == "active")] | length) == 1' >/dev/null 2>&1
}
wait_for 60 "$SEALED sealed segments of orders archived" orders_archived

# A metadata snapshot of the final state: the newest one in the bucket is at the last
# applied Raft index and holds cursor 5 (the leader writes one every 500ms on change).
snapshot_current() {
	local applied newest
	applied=$(curl -sf "http://$HTTP/v1/cluster" | jq -er '.metrics.last_applied') || return 1
	newest=$(ls "$WORK/bucket/meta/snapshots/" 2>/dev/null | grep -E '^[0-9]{20}\.json$' | sort | tail -n 1)
	[[ -n $newest && $((10#${newest%.json})) -eq $applied ]] || return 1
	jq -e --argjson cur "$ORDERS_GETS" --argjson n "$SEALED" '
		.state.topics.orders.cursor == $cur and (.state.topics | has("keep")) and
		([.state.topics.orders.segments[] | select(.state == "archived")] | length) == $n' \
		"$WORK/bucket/meta/snapshots/$newest" >/dev/null 2>&1
}
wait_for 30 "a metadata snapshot of the final state in the bucket" snapshot_current

# Record what was written, for the README.
state orders >"$WORK/orders.state.json"
state keep >"$WORK/keep.state.json"

log "stopping the node (SIGTERM)"
kill -TERM "$AGENT_PID"
deadline=$((SECONDS + 30))
while kill -0 "$AGENT_PID" 2>/dev/null; do
	((SECONDS < deadline)) || die "the node did not exit within 30s of SIGTERM"
	sleep 0.1 # poll period
done
rc=0
wait "$AGENT_PID" || rc=$?
AGENT_PID=""
((rc == 0)) || die "the agent exited with status $rc after SIGTERM"
grep -q 'msg="node stopped"' "$WORK/agent.log" || die "no 'node stopped' line in the agent log"

# Pack data/ and bucket/ (owner, order and gzip header normalised; file times kept).
mkdir -p "$(dirname "$OUT")"
tar -C "$WORK" --sort=name --owner=0 --group=0 --numeric-owner -cf - data bucket | gzip -9n >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"

log "orders: $(jq -c '{end_offset, cursor, segments: [.segments[] | {id, base, count, state, tier}]}' "$WORK/orders.state.json")"
log "keep: $(jq -c '{end_offset, cursor, segments: [.segments[] | {id, base, count, state, tier}]}' "$WORK/keep.state.json")"
log "bucket objects: $(cd "$WORK/bucket" && find . -type f -not -path './.floe-tmp/*' | sort | tr '\n' ' ')"
log "unpacked: $(du -sh --apparent-size "$WORK/data" | cut -f1) data (apparent), $(du -sh "$WORK/data" | cut -f1) on disk; $(du -sh --apparent-size "$WORK/bucket" | cut -f1) bucket"
log "wrote $OUT ($(stat -c %s "$OUT") bytes)"
