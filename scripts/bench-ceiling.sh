#!/usr/bin/env bash
# The pipeline's ceiling: one stack (Apache Kafka, Postgres, ingestor, aggregator, dashboard, all on
# this machine), the rate stepped up — 10 k, 20 k, 50 k, 100 k trades/s, STEP_SECONDS each (default
# 60) — printing per step the end-to-end latency, the backlog when the load ends (the aggregator's
# consumer lag and the bytes the ingestor has not yet had acknowledged), whether it kept up, and each
# process's CPU (what saturates first).
#
#   scripts/bench-ceiling.sh [STEP_SECONDS]     BENCH_STEPS="10000 20000 …" sets the rates
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
case "${1:-}" in -h|--help) sed -n '2,8p' "$0"; exit 0 ;; esac
STEP_SECONDS="${1:-60}"
SECONDS_PER_RUN="$STEP_SECONDS"
source scripts/bench-stack.sh

sum_metric() { # URL NAME: the sum of a metric's samples (labelled or not)
  curl -sf "$1" | awk -v n="$2" '$1 == n || index($1, n "{") == 1 { s += $NF } END { printf "%d\n", s }'
}

echo "ceiling: one stack, rates stepped up, ${STEP_SECONDS} s each (ingestor, Apache Kafka, aggregator, dashboard, Postgres and the load on one 2-core machine)"
start_stack "${BENCH_PARTITIONS:-12}"
for rate in ${BENCH_STEPS:-10000 20000 50000 100000}; do
  scrape before
  "$BENCH" --logs "$TRADE_LOG_DIR" --ws "$WS" --seconds "$STEP_SECONDS" --rate "$rate" --clients 10 --subscribers 10 \
    --label "step ${rate}/s" >"$WORK/step.out" &
  bench=$!
  # The load lasts STEP_SECONDS: read the backlog as it ends (the benchmark's schedule, not a sync).
  sleep "$STEP_SECONDS"
  lag=$(sum_metric "http://$AGG_METRICS/metrics" tradeflow_aggregator_consumer_lag)
  behind=$(sum_metric "http://$ING_METRICS/metrics" tradeflow_ingestor_bytes_behind)
  wait "$bench" || true
  scrape after
  cat "$WORK/step.out"
  report
  kept="yes"
  if [ "$lag" -gt "$rate" ] || [ "$behind" -gt $((rate * 600)) ] || grep -q INCOMPLETE "$WORK/step.out"; then kept="NO"; fi
  echo "  backlog as the load ended: aggregator lag $lag records, ingestor $behind bytes unacknowledged; kept up: $kept"
done
