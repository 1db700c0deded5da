// Package localstack holds the docker-compose stack of floe (MinIO and a three-node
// cluster archiving to it, docker-compose.yml), the Dockerfiles that build its images
// offline from static binaries (Dockerfile.floe, Dockerfile.minio), the helper behind the
// Makefile's images and compose-* targets (stack.sh), Distributed Walrus's own compose
// layout running floe's image (walrus/docker-compose.yml), and their end-to-end tests.
// The stack runs secured (mutual TLS between nodes, TLS and an admin token on the client
// and HTTP ports) with credentials stack.sh makes; Walrus's layout runs open, as
// Walrus's own does.
//
// The tests drive a real Docker engine. They run when FLOE_COMPOSE_TEST=1 (make
// test-compose, and make test when `docker info` answers; .ci/run requires the engine), in
// which case a missing engine is a failure; with FLOE_COMPOSE_TEST unset they run only if
// `docker info` answers, and FLOE_COMPOSE_TEST=0 skips them. There is no Go code here
// besides the tests.
package localstack
