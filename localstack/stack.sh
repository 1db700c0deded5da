#!/usr/bin/env bash
# The localstack helper behind the Makefile's images, compose-up, compose-down and
# compose-logs targets (see README.md, "Docker compose (localstack)").
#
#   stack.sh images   build floe:dev and floe-minio:dev offline, from static binaries
#   stack.sh secrets [dir]
#                     make the stack's credentials in dir (default $FLOE_SECRETS_DIR, else
#                     localstack/.secrets) unless they are there: a CA and a node
#                     certificate (floe certs), an admin token and the token file holding
#                     its digest (floe auth)
#   stack.sh up       make the credentials, start the stack, wait until every service is
#                     healthy and every node ready, print the endpoints
#   stack.sh down     stop and remove the stack, its network and its volumes
#   stack.sh logs     follow the logs
#   stack.sh ps       list the containers
#
# Environment: FLOE_BIN (default bin/floe) and MINIO_BIN (default bin/minio), FLOE_BUILD_DIR
# (the scratch dir of the build contexts, default localstack/.build), CA_BUNDLE
# (default /etc/ssl/certs/ca-certificates.crt), FLOE_IMAGE and FLOE_MINIO_IMAGE (default
# floe:dev and floe-minio:dev), MINIO (local: floe-minio:dev, built here; official: the
# official image, see minio-official.yml), FLOE_COMPOSE_PROJECT (default floe), COMPOSE (the compose
# command; default `docker compose` if that works, else `docker-compose`), and the host
# port variables of docker-compose.yml.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
FLOE_BIN=${FLOE_BIN:-$root/bin/floe}
MINIO_BIN=${MINIO_BIN:-$root/bin/minio}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
export FLOE_IMAGE=${FLOE_IMAGE:-floe:dev}
project=${FLOE_COMPOSE_PROJECT:-floe}
files=(-f "$here/docker-compose.yml")
case "${MINIO:-local}" in
local) export FLOE_MINIO_IMAGE=${FLOE_MINIO_IMAGE:-floe-minio:dev} ;;
official)
	# The official image from a registry (minio-official.yml); nothing to build for it.
	export FLOE_MINIO_IMAGE=${FLOE_MINIO_IMAGE:-quay.io/minio/minio:latest}
	files+=(-f "$here/minio-official.yml")
	;;
*) echo "localstack: MINIO=$MINIO: want local or official" >&2; exit 1 ;;
esac

die() { echo "localstack: $*" >&2; exit 1; }

export FLOE_SECRETS_DIR=${FLOE_SECRETS_DIR:-$here/.secrets}

# secrets dir: the stack's credentials, made once and kept (compose-down leaves them, so
# that clients keep trusting the same CA; remove the directory to start over). The nodes
# run as uid 65532 and read the keys through a read-only bind mount: as root, the keys
# and the token file are given to that uid (mode 0600); otherwise they are made
# readable by every local user (0644), and the nodes say so in their logs.
secrets() {
	local dir=$1 tok
	[ -x "$FLOE_BIN" ] || die "$FLOE_BIN is missing: run 'make build'"
	mkdir -p "$dir"
	if [ ! -f "$dir/certs/node.crt" ] || [ ! -f "$dir/certs/node.key" ]; then
		# --force: a pair left half-made is made again (the CA, if there, is kept).
		"$FLOE_BIN" certs --force --dir "$dir/certs" --node node=node1,node2,node3,localhost,127.0.0.1 >/dev/null ||
			die "floe certs failed in $dir/certs"
	fi
	if [ ! -s "$dir/admin.token" ]; then
		tok=$("$FLOE_BIN" auth token) || die "floe auth token failed"
		(umask 077 && printf '%s\n' "$tok" >"$dir/admin.token")
		rm -f "$dir/tokens" # it names the token replaced
	fi
	if [ ! -f "$dir/tokens" ]; then
		{
			echo "# floe localstack: the admin token ($dir/admin.token)"
			"$FLOE_BIN" auth hash --role admin <"$dir/admin.token"
		} >"$dir/tokens.tmp" || die "floe auth hash failed"
		mv "$dir/tokens.tmp" "$dir/tokens"
	fi
	# The nodes (uid 65532) read node.key and tokens through the bind mounts.
	if [ "$(id -u)" = 0 ]; then
		chown 65532:65532 "$dir/certs/node.key" "$dir/tokens"
		chmod 0600 "$dir/certs/node.key" "$dir/tokens"
	elif [ -O "$dir/certs/node.key" ] && [ -O "$dir/tokens" ]; then
		chmod 0644 "$dir/certs/node.key" "$dir/tokens"
	else
		[ -r "$dir/certs/node.key" ] || die "$dir was made by another user (root?): remove it, or run as that user"
	fi
}

compose() {
	if [ -z "${COMPOSE:-}" ]; then
		if docker compose version >/dev/null 2>&1; then
			COMPOSE="docker compose"
		elif command -v docker-compose >/dev/null 2>&1; then
			COMPOSE=docker-compose
		else
			die "neither 'docker compose' nor 'docker-compose' is installed"
		fi
	fi
	# shellcheck disable=SC2086
	$COMPOSE -p "$project" "${files[@]}" "$@"
}

# context dir: a build context holding only what the Dockerfile copies.
context() {
	local dir=$1
	rm -rf "$dir"
	mkdir -p "$dir/data" "$dir/tmp"
	chmod 0755 "$dir/data"
	chmod 1777 "$dir/tmp"
	cp "$CA_BUNDLE" "$dir/ca-certificates.crt"
	printf 'root:x:0:0:root:/:/sbin/nologin\nfloe:x:65532:65532:floe:/data:/sbin/nologin\n' >"$dir/passwd"
	printf 'root:x:0:\nfloe:x:65532:\n' >"$dir/group"
	# A hard link when it can (same file system), else a copy.
	ln -f "$FLOE_BIN" "$dir/floe" 2>/dev/null || cp "$FLOE_BIN" "$dir/floe"
}

images() {
	[ -x "$FLOE_BIN" ] || die "$FLOE_BIN is missing: run 'make build'"
	local with_minio=1
	[ "${MINIO:-local}" = official ] && with_minio=
	[ -z "$with_minio" ] || [ -x "$MINIO_BIN" ] || die "$MINIO_BIN is missing: run 'make minio'"
	[ -r "$CA_BUNDLE" ] || die "no CA bundle at $CA_BUNDLE (set CA_BUNDLE)"
	for b in "$FLOE_BIN" ${with_minio:+"$MINIO_BIN"}; do
		# FROM scratch has no libc: the binaries must be static.
		if command -v ldd >/dev/null && ldd "$b" >/dev/null 2>&1; then
			die "$b is dynamically linked; build it with CGO_ENABLED=0"
		fi
	done
	local ctx=${FLOE_BUILD_DIR:-$here/.build}
	# The legacy builder is enough (no BuildKit features are used), and it is what
	# an engine without the buildx plugin has.
	context "$ctx/floe"
	build "$FLOE_IMAGE" "$here/Dockerfile.floe" "$ctx/floe"
	if [ -n "$with_minio" ]; then
		context "$ctx/minio"
		ln -f "$MINIO_BIN" "$ctx/minio/minio" 2>/dev/null || cp "$MINIO_BIN" "$ctx/minio/minio"
		build "$FLOE_MINIO_IMAGE" "$here/Dockerfile.minio" "$ctx/minio"
	fi
	rm -rf "$ctx"
}

# build tag dockerfile context: docker build, quiet unless it fails (the legacy builder's
# deprecation notice is noise here). The image the tag named before is removed if nothing
# else uses it, so that rebuilds leave no dangling images behind.
build() {
	local out old new
	echo "localstack: building $1"
	old=$(docker image inspect -f '{{.Id}}' "$1" 2>/dev/null || true)
	if ! out=$(docker build -q -t "$1" -f "$2" "$3" 2>&1); then
		echo "$out" >&2
		die "docker build of $1 failed"
	fi
	new=$(docker image inspect -f '{{.Id}}' "$1")
	if [ -n "$old" ] && [ "$old" != "$new" ]; then
		docker rmi "$old" >/dev/null 2>&1 || true
	fi
}

# wait_up: every service healthy (Docker's health check on /healthz), then every node
# ready (/readyz: it sees a Raft leader and is a registered member).
wait_up() {
	local deadline=$((SECONDS + ${FLOE_WAIT_SECONDS:-180})) svc id status
	for svc in minio node1 node2 node3; do
		while :; do
			id=$(compose ps -q "$svc" 2>/dev/null || true)
			status=none
			[ -n "$id" ] && status=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id" 2>/dev/null || echo none)
			[ "$status" = healthy ] && break
			if [ $SECONDS -ge $deadline ]; then
				compose ps >&2 || true
				compose logs --tail 50 "$svc" >&2 || true
				die "$svc is not healthy (status: $status)"
			fi
			sleep 1
		done
	done
	local n port
	for n in 1 2 3; do
		port=$(hport "FLOE_NODE${n}_HTTP_PORT" $((9180 + n)))
		until "$FLOE_BIN" healthcheck --tls-ca "$FLOE_SECRETS_DIR/certs/ca.crt" --url "https://$(hhost):$port/readyz" >/dev/null 2>&1; do
			[ $SECONDS -ge $deadline ] && die "node$n is not ready: https://$(hhost):$port/readyz"
			sleep 1
		done
	done
}

hport() { local v=${!1:-}; echo "${v:-$2}"; }
hhost() {
	local h=${FLOE_HOST_IP:-127.0.0.1}
	[ "$h" = 0.0.0.0 ] && h=127.0.0.1
	echo "$h"
}

endpoints() {
	local h c1 c2 c3
	h=$(hhost)
	c1=$(hport FLOE_NODE1_CLIENT_PORT 9091)
	c2=$(hport FLOE_NODE2_CLIENT_PORT 9092)
	c3=$(hport FLOE_NODE3_CLIENT_PORT 9093)
	cat <<EOF

floe localstack is up (compose project "$project").

  floe client (Walrus protocol, TLS, AUTH first)
                                 $h:$c1  $h:$c2  $h:$c3
  floe HTTP API (/healthz, /readyz, /metrics, /v1/...; Bearer token)
                                 https://$h:$(hport FLOE_NODE1_HTTP_PORT 9181)  https://$h:$(hport FLOE_NODE2_HTTP_PORT 9182)  https://$h:$(hport FLOE_NODE3_HTTP_PORT 9183)
  credentials                    $FLOE_SECRETS_DIR (CA certs/ca.crt, admin.token)
  MinIO S3 API                   http://$h:$(hport FLOE_MINIO_API_PORT 9000)
  MinIO console                  http://$h:$(hport FLOE_MINIO_CONSOLE_PORT 9001)   user ${MINIO_ROOT_USER:-minioadmin}, password ${MINIO_ROOT_PASSWORD:-minioadmin}
  archive                        s3://floe/cluster (bucket "floe", prefix "cluster/")

Try (the client subcommands default to 127.0.0.1:9091,9092,9093; else pass --addr):
  export FLOE_TLS_CA=$FLOE_SECRETS_DIR/certs/ca.crt FLOE_TOKEN=\$(cat $FLOE_SECRETS_DIR/admin.token)
  bin/floe register demo
  bin/floe put --addr $h:$c1 demo hello world
  bin/floe get --addr $h:$c2 demo
  bin/floe state --addr $h:$c3 demo
  curl --cacert $FLOE_SECRETS_DIR/certs/ca.crt -H "Authorization: Bearer \$FLOE_TOKEN" https://$h:$(hport FLOE_NODE1_HTTP_PORT 9181)/v1/cluster

  make compose-logs    # follow the logs
  make compose-down    # remove the stack and its volumes
EOF
}

case "${1:-}" in
images) images ;;
secrets) secrets "${2:-$FLOE_SECRETS_DIR}" ;;
up)
	secrets "$FLOE_SECRETS_DIR"
	compose up -d
	wait_up
	endpoints
	;;
wait) wait_up ;;
down) compose down -v --remove-orphans ;;
logs) compose logs -f --tail 100 ;;
ps) compose ps ;;
*) die "usage: $0 images|secrets [dir]|up|wait|down|logs|ps" ;;
esac
