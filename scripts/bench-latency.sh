#!/usr/bin/env bash
# End-to-end latency benchmark: trade line appended to a log file → websocket frame showing it,
# through the real ingestor, broker (Apache Kafka), aggregator and dashboard, at 1 k and 10 k trades/s;
# then fan-out: 1,000 websocket subscribers across 100 clients; each on a fresh stack. `trades` has
# 12 partitions (BENCH_PARTITIONS=N), `summaries` 1 (BENCH_SUMMARIES_PARTITIONS=N), and a last run
# repeats 10 k trades/s with summaries on 12. After each load: the per-hop quantiles (freshness
# histograms) and each process's CPU over the load. BENCH_LOADS="1k 10k fanout" picks loads (then
# no last run); BENCH_WINDOW=60 also prints every minute of a load (scripts/bench-soak.sh). The
# services' settings come from the environment (e.g. TRADEFLOW_INGESTOR_LINGER_MS).
#
#   scripts/bench-latency.sh [SECONDS]     (default 20 s of load per run)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

SECONDS_PER_RUN="${1:-20}"
source scripts/bench-stack.sh

# `summaries` with 1 partition, its default: every dashboard reads all of it and per-row order rides
# on each change's offset, so its partition count scales nothing (docs/benchmarks.md).
SUMMARY_PARTS="${BENCH_SUMMARIES_PARTITIONS:-1}"
echo "end-to-end latency: line appended → websocket frame (ingestor, Apache Kafka, aggregator, dashboard on one 2-core machine)"
echo "linger: ingestor ${TRADEFLOW_INGESTOR_LINGER_MS:-5} ms, changelog ${TRADEFLOW_CHANGELOG_LINGER_MS:-5} ms; partitions: trades ${BENCH_PARTITIONS:-12}, summaries $SUMMARY_PARTS; a fresh stack per load"
for load in ${BENCH_LOADS:-1k 10k fanout}; do
  case "$load" in
    1k) measure --label "1k trades/s" --rate 1000 --clients 10 --subscribers 10 ;;
    10k) measure --label "10k trades/s" --rate 10000 --clients 10 --subscribers 10 ;;
    fanout) measure --label "fan-out 1000 subs" --rate 1000 --clients 100 --subscribers 1000 ;;
    custom) measure $BENCH_CUSTOM ;;
    *) die "unknown load $load (1k, 10k, fanout)" ;;
  esac
done
if [ "$SUMMARY_PARTS" != 12 ] && [ -z "${BENCH_LOADS:-}" ]; then
  echo "the same with summaries on 12 partitions"
  SUMMARY_PARTS=12 measure --label "10k trades/s, summ. 12" --rate 10000 --clients 10 --subscribers 10
fi
