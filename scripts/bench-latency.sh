#!/usr/bin/env bash
# End-to-end latency benchmark: trade line appended to a log file → websocket frame showing it,
# through the real ingestor, broker (tansu), aggregator and dashboard, at 1 k and 10 k trades/s;
# then fan-out: 1,000 websocket subscribers across 100 clients.
#
#   scripts/bench-latency.sh [SECONDS]     (default 20 s of load per run)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

SECONDS_PER_RUN="${1:-20}"
ensure_tansu
ensure_postgres
cargo build --release --locked --bin tradeflow --example e2e_latency -p tradeflow -p tradeflow-dashboard >&2
TF="$PWD/target/release/tradeflow"
BENCH="$PWD/target/release/examples/e2e_latency"
WORK=$(mktemp -d /tmp/tradeflow-latency.XXXXXX)
KPORT=$(free_port); DPORT=$(free_port)
DB="tradeflow_bench_$$"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  kill "${TANSU_PID:-}" 2>/dev/null || true
  psql "$DATABASE_URL" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  stop_throwaway_postgres
  rm -rf "$WORK"
}
trap cleanup EXIT
start_tansu "$KPORT" "memory://tansu/" "$WORK/broker" "$WORK/tansu.log"
psql "$DATABASE_URL" -qc "CREATE DATABASE $DB" >/dev/null
export KAFKA_BROKERS="127.0.0.1:$KPORT" DATABASE_URL="${DATABASE_URL%/*}/$DB" TRADE_LOG_DIR="$WORK/logs" RUST_LOG=warn
export TRADEFLOW_INGESTOR_METRICS_ADDR=127.0.0.1:0 TRADEFLOW_AGGREGATOR_METRICS_ADDR=127.0.0.1:0
mkdir -p "$WORK/logs"
"$TF" topics >/dev/null
"$TF" ingestor --state-dir "$WORK/state" 2>>"$WORK/ingestor.log" & PIDS+=($!)
TRADEFLOW_SNAPSHOT_INTERVAL_MS=2000 "$TF" aggregator 2>>"$WORK/aggregator.log" & PIDS+=($!)
"$TF" dashboard --auth-off --listen "127.0.0.1:$DPORT" 2>>"$WORK/dashboard.log" & PIDS+=($!)
deadline=$((SECONDS + 60))
until curl -sf "http://127.0.0.1:$DPORT/readyz" >/dev/null; do
  [ "$SECONDS" -lt "$deadline" ] || die "dashboard not ready"; sleep 0.2
done

run() { "$BENCH" --logs "$WORK/logs" --ws "ws://127.0.0.1:$DPORT/ws" --seconds "$SECONDS_PER_RUN" "$@"; }
# Warm-up (not reported): the consumer group settles, rows and feeds exist, connections are hot.
"$BENCH" --logs "$WORK/logs" --ws "ws://127.0.0.1:$DPORT/ws" --seconds 3 --label warm-up --rate 1000 --clients 10 --subscribers 10 >/dev/null
echo "end-to-end latency: line appended → websocket frame (ingestor, tansu, aggregator, dashboard on one 2-core machine)"
run --label "1k trades/s" --rate 1000 --clients 10 --subscribers 10
run --label "10k trades/s" --rate 10000 --clients 10 --subscribers 10
echo "fan-out"
run --label "fan-out 1000 subs" --rate 1000 --clients 100 --subscribers 1000
