#!/usr/bin/env bash
# The test suite: checks formatting and lints (fails on either), installs what is missing (make,
# pkg-config, OpenSSL's headers and CLI, Apache Kafka's jars, Java, Postgres, Chromium), starts a Kafka node for the run, then runs every test,
# then the compose check (scripts/compose-check.sh: Docker, Compose and the images it needs are installed or built).
# Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_build_tools
check_house
ensure_kafka
ensure_postgres
ensure_pg_server_binaries
ensure_chromium
RUN_DIR=$(mktemp -d /tmp/tradeflow-test.XXXXXX)
start_kafka "$RUN_DIR/kafka"
cleanup() {
  { kill -KILL "$KAFKA_PID"; wait "$KAFKA_PID"; } 2>/dev/null || true
  stop_throwaway_postgres
  rm -rf "$RUN_DIR"
}
trap cleanup EXIT

export TRADEFLOW_TEST_BROKERS="$KAFKA_BROKERS" DATABASE_URL
log "running cargo test (broker $TRADEFLOW_TEST_BROKERS)"
cargo test --workspace --locked "$@" 2>&1 | tee "$RUN_DIR/cargo-test.log"
# The chaos run's short form (2 minutes of every fault; it starts its own 3-node cluster and Postgres),
# alone, after the rest: the full suite only (no extra arguments), unless TRADEFLOW_SKIP_CHAOS=1.
if [ $# -eq 0 ] && [ "${TRADEFLOW_SKIP_CHAOS:-0}" != 1 ]; then
  log "running the chaos run's short form (scripts/chaos.sh 2)"
  CHAOS_MINUTES=2 cargo test --locked --test integration chaos -- --ignored --nocapture 2>&1 | tee -a "$RUN_DIR/cargo-test.log"
fi
# The integration tests are the broker-facing ones: all on the Apache Kafka started above (or the
# nodes they start themselves); there is no other broker in the suite.
awk -v v="$KAFKA_VERSION" '/Running tests\/integration\/main.rs/ { it = 1 } it && /^test result:/ { print "integration tests (Apache Kafka " v ", Postgres): " $4 " passed, " $6 " failed"; it = 0 }' "$RUN_DIR/cargo-test.log" | tr -d ';'
# One closing line over every test binary (cargo's last line is a doc-test binary's, often empty).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
     END { printf "tradeflow: %d passed, %d failed\n", p, f }' "$RUN_DIR/cargo-test.log"
# The compose check (docker compose up for real, on stand-in images; the alert rules' promtool tests),
# around the binary cargo test built: the full suite only, unless TRADEFLOW_SKIP_COMPOSE=1.
if [ $# -eq 0 ] && [ "${TRADEFLOW_SKIP_COMPOSE:-0}" != 1 ]; then
  log "running the compose check (scripts/compose-check.sh)"
  COMPOSE_BINARY=target/debug/tradeflow bash scripts/compose-check.sh
fi
