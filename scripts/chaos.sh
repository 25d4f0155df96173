#!/usr/bin/env bash
# The chaos run: the whole pipeline on a three-node Apache Kafka cluster (replication factor 3,
# min.insync.replicas 2), a Postgres of its own, the producer (8 clients crossing a midnight), the
# price feed, one ingestor, three aggregators, two dashboards with one subscriber per client each;
# faults from a seeded schedule for MINUTES, then the verdicts (tests/integration/chaos.rs).
#
#   scripts/chaos.sh [MINUTES]      default 10; CHAOS_SEED=N replays a run's schedule (its seed is printed)
#
# Exits non-zero on any failed verdict.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
case "${1:-}" in -h|--help) sed -n '2,9p' "$0"; exit 0 ;; esac

ensure_kafka
ensure_pg_server_binaries
export CHAOS_MINUTES="${1:-10}"
log "chaos run: $CHAOS_MINUTES minutes of faults${CHAOS_SEED:+, seed $CHAOS_SEED}"
ensure_build_tools
cargo test --locked --test integration chaos -- --ignored --nocapture --test-threads 1
