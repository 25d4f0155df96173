#!/usr/bin/env bash
# The page benchmark: scripts/bench-page.sh [MINUTES] (default 2; 30 for the flat-heap check).
# One client with 2,000 rows on the real dashboard (on a real Apache Kafka node), 1,000 row
# versions a second (BENCH_PAGE_RATE) published onto its summaries topic, the page open in Debian's
# headless Chromium; prints, from the browser's own timeline, row updates applied per second, frame
# interval p50/p95/max beside the same page idle (the peer), paint time, long tasks and the JS heap
# every 30 s. Runs tests/integration/page_bench.rs (#[ignore]) through scripts/test.sh (fmt and
# clippy first, then the broker and Postgres it starts). Everything shares this machine's 2 cores:
# the load average is printed at the start and the end.
# BENCH_PAGE_TRACE=file.json also saves a CDP trace of 8 s of the load and prints where the page's
# main thread spent it (docs/benchmarks.md#the-page; TRADEFLOW_TEST_BIN, BENCH_PAGE_INJECT to alternate builds).
set -euo pipefail
cd "$(dirname "$0")/.."
export BENCH_PAGE_MINUTES="${1:-2}"
exec scripts/test.sh --test integration page_benchmark -- --ignored --nocapture --test-threads=1
