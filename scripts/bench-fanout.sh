#!/usr/bin/env bash
# Fan-out: SUBSCRIBERS websocket subscribers (default 10,000) over CLIENTS clients (default 1,000) at
# RATE trades/s (default 10,000) for SECONDS (default 20) on one fresh stack (bench-stack.sh: Apache
# Kafka, Postgres, ingestor, aggregator, dashboard), measured by the e2e_latency client (a tokio task
# per socket): the line-appended → frame latency p50 / p99 / max over every subscriber, the per-hop
# quantiles, every process's CPU and CPU per trade, then the dashboard's cost per subscriber: RSS
# (peak during the load − RSS before the subscribers, over the subscribers), CPU (% of a core per
# 1,000 subscribers) and CPU per frame sent. The dashboard's socket limits are raised by its flags'
# environment variables (TRADEFLOW_MAX_SOCKETS, TRADEFLOW_MAX_SOCKETS_PER_CLIENT), the open-file
# limit by `ulimit -n` (each side holds a descriptor per socket). Everything shares this 2-core
# machine; the load average is printed.
#
#   scripts/bench-fanout.sh [SECONDS]     SUBSCRIBERS=N CLIENTS=N RATE=N
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
case "${1:-}" in -h|--help) sed -n '2,13p' "$0"; exit 0 ;; esac
SECONDS_PER_RUN="${1:-20}"
SUBSCRIBERS="${SUBSCRIBERS:-10000}"
CLIENTS="${CLIENTS:-1000}"
RATE="${RATE:-10000}"
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -gt $((SUBSCRIBERS + 1000)) ] || die "ulimit -n $(ulimit -n) is too low for $SUBSCRIBERS sockets"
export TRADEFLOW_MAX_SOCKETS=$((SUBSCRIBERS + 100)) TRADEFLOW_MAX_SOCKETS_PER_CLIENT=$((SUBSCRIBERS / CLIENTS + 10))
source scripts/bench-stack.sh

echo "fan-out: $SUBSCRIBERS subscribers over $CLIENTS clients at $RATE trades/s, ${SECONDS_PER_RUN} s (Apache Kafka, Postgres, services and the client on one 2-core machine)"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
start_stack "${BENCH_PARTITIONS:-12}"
dash_pid=${PIDS[2]}
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
rss0=$(rss_kb "$dash_pid")
scrape before
run --label "fan-out ${SUBSCRIBERS} subs" --rate "$RATE" --clients "$CLIENTS" --subscribers "$SUBSCRIBERS" >"$WORK/fanout.out" &
bench=$!
# The dashboard's RSS sampled every second while the load runs (a measurement, not a sync): the peak.
peak=$rss0
while kill -0 "$bench" 2>/dev/null; do
  r=$(rss_kb "$dash_pid"); [ "$r" -gt "$peak" ] && peak=$r
  sleep 1
done
wait "$bench"
scrape after
cat "$WORK/fanout.out"
report
python3 - "$WORK/cpu.before" "$WORK/cpu.after" "$(getconf CLK_TCK)" "$WORK/dash.before" "$WORK/dash.after" \
  "$rss0" "$peak" "$SUBSCRIBERS" <<'PY'
import sys
b, a = (list(map(float, open(p).read().split())) for p in sys.argv[1:3])
hz, secs = float(sys.argv[3]), a[0] - b[0]
cpu = (a[3] - b[3]) / hz
def sent(path):
    return next((float(l.split()[1]) for l in open(path) if l.startswith("tradeflow_dashboard_messages_sent_total ")), 0.0)
frames = sent(sys.argv[5]) - sent(sys.argv[4])
rss0, peak, subs = int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
print(f"  dashboard per subscriber: RSS {peak / 1024:.0f} MiB at peak (before the subscribers {rss0 / 1024:.0f}) = {(peak - rss0) * 1024 / subs / 1024:.1f} KiB per subscriber;"
      f" CPU {cpu / secs * 100:.0f} % of a core = {cpu / secs * 100 / subs * 1000:.1f} % per 1,000 subscribers;"
      f" {frames:.0f} frames sent = {cpu / max(frames, 1) * 1e6:.1f} µs CPU per frame")
PY
stop_stack
