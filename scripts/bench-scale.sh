#!/usr/bin/env bash
# State scale: how the aggregator and the dashboard cost grows with the live rows. For each scale
# (default 10 k, 100 k and 1 M rows: CLIENTS × 3 accounts × 334 symbols, one trade per row, plus one
# client with 3 accounts × 1,000 symbols = 3,000 rows), on a fresh Apache Kafka node and database:
#   - the trade lines are written straight in the log format by this script (not the producer: it
#     has five symbols) and published by `tradeflow ingestor --backfill` to `trades`, while one
#     aggregator and one dashboard run;
#   - aggregator RSS per row (RSS with the rows − RSS before the first trade, over the rows);
#   - snapshot cost for the N dirty rows (Σ of the snapshot transactions' time from the aggregator's
#     counters, the number of transactions, µs per row);
#   - dashboard RSS per row, and the time to send the 3,000-row client's snapshot (`tradeflow tail
#     --frames 2`: connect, hello, subscribe, receive the snapshot frame; process start included; ROUNDS
#     rounds, median);
#   - a second aggregator joins: its partitions' load time and rows (its counters), and the wall time
#     from its start until both own their share of the 12 partitions.
# Then, at the largest scale, BENCH_DIRTY="10000 100000" more trades touch that many existing rows
# (snapshot time with 10 k and 100 k dirty rows among the N live rows). BENCH_P99=1: a live
# ingestor on its own directory, and the e2e_latency client at 10 k trades/s for P99_SECONDS (30)
# before the rows are loaded and again with them all live, at the largest scale: p99 with 0 and
# with N live rows, same stack. Everything shares this machine; the load average is printed.
#
#   scripts/bench-scale.sh [ROWS…]     (default 10000 100000 1000000; ROUNDS=5; BENCH_P99=1 P99_SECONDS=30; BENCH_DIRTY)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
case "${1:-}" in -h|--help) sed -n '2,22p' "$0"; exit 0 ;; esac
SCALES=("${@:-10000 100000 1000000}")
SCALES=(${SCALES[*]})
ROUNDS="${ROUNDS:-5}"
SYMBOLS=334
BIG_CLIENT=9999999

ensure_kafka
ensure_postgres
ensure_build_tools  # librdkafka's build: make, pkg-config, OpenSSL's headers
cargo build --release --locked --bin tradeflow >&2
TF="$PWD/target/release/tradeflow"
if [ "${BENCH_P99:-0}" = 1 ]; then
  cargo build --release --locked -p tradeflow-dashboard --example e2e_latency >&2
  BENCH="$PWD/target/release/examples/e2e_latency"
fi
# latency LABEL: 10 k trades/s through the live ingestor, P99_SECONDS, 10 clients, 10 subscribers.
latency() {
  "$BENCH" --logs "$dir/live" --ws "ws://127.0.0.1:$DPORT/ws" --seconds 5 --rate 1000 --clients 10 --subscribers 10 --label warm-up >/dev/null
  "$BENCH" --logs "$dir/live" --ws "ws://127.0.0.1:$DPORT/ws" --seconds "${P99_SECONDS:-30}" --rate 10000 --clients 10 \
    --subscribers 10 --label "$1"
  echo "  load average $(cut -d' ' -f1-3 /proc/loadavg)"
}
WORK=$(mktemp -d /tmp/tradeflow-scale.XXXXXX)
BASE_URL="$DATABASE_URL"
PIDS=()
DB=""
stop_stack() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  PIDS=()
  if [ -n "${KAFKA_PID:-}" ]; then kill -KILL "$KAFKA_PID" 2>/dev/null || true; wait "$KAFKA_PID" 2>/dev/null || true; KAFKA_PID=""; fi
  if [ -n "$DB" ]; then psql "$BASE_URL" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true; DB=""; fi
}
cleanup() { stop_stack; stop_throwaway_postgres; rm -rf "$WORK"; }
trap cleanup EXIT

metric() { # ADDR NAME → the value of an unlabelled sample (0 when absent)
  curl -sf "http://$1/metrics" | awk -v n="$2" '$1 == n { v = $2 } END { printf "%s\n", v == "" ? 0 : v }'
}
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
# wait_for DESCRIPTION SECONDS COMMAND…: polls COMMAND until it succeeds, or dies after SECONDS.
wait_for() {
  local what=$1 deadline=$((SECONDS + $2)); shift 2
  until "$@"; do [ "$SECONDS" -lt "$deadline" ] || die "timed out waiting for $what"; sleep 0.2; done
}
at_least() { [ "$(metric "$1" "$2" | cut -d. -f1)" -ge "$3" ]; }
both() { echo $(( $(metric "$AGG" "$1" | cut -d. -f1) + $(metric "$AGG2" "$1" | cut -d. -f1) )); }
both_at_least() { [ "$(both "$1")" -ge "$2" ]; } # NAME N: the two aggregators' samples add up to N

# write_lines DIR CLIENTS FIRST_SYMBOL SYMBOLS [CLIENT_ID…]: one trade per (client, account,
# symbol) appended in the log format, today (UTC), activity times ascending from T0 s (default 1).
write_lines() {
  python3 - "$@" <<'PY'
import datetime, os, sys
d, clients, first, symbols = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ids = sys.argv[5:] or [str(c) for c in range(1, clients + 1)]
day = datetime.datetime.now(datetime.timezone.utc).date()
for cid in ids:
    with open(f"{d}/tradeLog_client{cid}.{day:%Y.%m.%d}.log", "a") as f:
        us = int(os.environ.get("T0", "1")) * 1_000_000
        out = []
        for a in ("CQ01", "CQ02", "CQ03"):
            for s in range(first, first + symbols):
                us += 1
                t = f"{day:%Y.%m.%d} {us // 3_600_000_000:02d}:{us // 60_000_000 % 60:02d}:{us // 1_000_000 % 60:02d}.{us % 1_000_000:06d}000"
                out.append(f"Activity Time:{t}|Symbol:S{s:04d}|Side:{'BS'[s % 2]}|Price:{100 + s % 50}.25|Quantity:{1 + s % 90}|AccountID:{a}\n")
        f.write("".join(out))
PY
}

publish() { # DIR: every line in DIR to `trades`, acknowledged
  "$TF" ingestor --backfill --from "$(date -u +%F)" --dir "$1" --state-dir "$WORK/state.$RANDOM" 2>>"$WORK/ingestor.log"
}

snapshot_figures() { # LABEL ROWS BEFORE_MICROS BEFORE_COUNT BEFORE_ROWS
  local micros count rows
  micros=$(metric "$AGG" tradeflow_aggregator_snapshot_duration_microseconds_total)
  count=$(metric "$AGG" tradeflow_aggregator_snapshots_total)
  rows=$(metric "$AGG" tradeflow_aggregator_snapshot_rows_total)
  python3 -c "
m, c, r = $micros - $3, $count - $4, $rows - $5
print(f'  snapshot of $1: {r:.0f} rows in {c:.0f} partition transactions, Σ {m / 1e3:.1f} ms = {m / max(r, 1):.1f} µs per row')"
}

echo "state scale: one Apache Kafka node, Postgres, two aggregators, a dashboard and the loader on one 2-core machine (shared)"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
for rows in "${SCALES[@]}"; do
  clients=$(( (rows + 3 * SYMBOLS - 1) / (3 * SYMBOLS) ))
  total=$((clients * 3 * SYMBOLS + 3000))
  dir="$WORK/scale$rows"; mkdir -p "$dir/logs"
  DB="tradeflow_scale_$$_$rows"
  start_kafka "$dir/broker"
  psql "$BASE_URL" -qc "CREATE DATABASE $DB" >/dev/null
  export KAFKA_BROKERS DATABASE_URL="${BASE_URL%/*}/$DB" RUST_LOG=warn
  "$TF" topics >/dev/null
  AGG="127.0.0.1:$(free_port)"; AGG2="127.0.0.1:$(free_port)"; DPORT=$(free_port)
  "$TF" aggregator --metrics-addr "$AGG" --snapshot-interval-ms 2000 2>>"$dir/aggregator.log" & PIDS+=($!); agg_pid=$!
  "$TF" dashboard --auth-off --listen "127.0.0.1:$DPORT" --max-sockets-per-client 1000 2>>"$dir/dashboard.log" & PIDS+=($!); dash_pid=$!
  wait_for "the dashboard" 60 curl -sf "http://127.0.0.1:$DPORT/readyz" -o /dev/null
  wait_for "the aggregator's partitions" 60 at_least "$AGG" tradeflow_aggregator_partitions_owned 12
  p99=""
  if [ "${BENCH_P99:-0}" = 1 ] && [ "$rows" = "${SCALES[-1]}" ]; then p99=1; fi
  if [ -n "$p99" ]; then
    mkdir -p "$dir/live"
    TRADEFLOW_INGESTOR_METRICS_ADDR="127.0.0.1:$(free_port)" "$TF" ingestor --dir "$dir/live" --state-dir "$dir/live-state" \
      2>>"$dir/ingestor-live.log" & PIDS+=($!)
    latency "10k trades/s, 0 live rows"
  fi
  agg_rss0=$(rss_kb "$agg_pid"); dash_rss0=$(rss_kb "$dash_pid")
  s_micros=$(metric "$AGG" tradeflow_aggregator_snapshot_duration_microseconds_total)
  s_count=$(metric "$AGG" tradeflow_aggregator_snapshots_total); s_rows=$(metric "$AGG" tradeflow_aggregator_snapshot_rows_total)
  rec_base=$(metric "$AGG" tradeflow_aggregator_records_total | cut -d. -f1)
  sum_base=$(metric "127.0.0.1:$DPORT" tradeflow_dashboard_summaries_total | cut -d. -f1)

  log "scale $rows: writing $total lines ($clients clients × 3 accounts × $SYMBOLS symbols + one client × 3 × 1,000)"
  write_lines "$dir/logs" "$clients" 0 "$SYMBOLS"
  write_lines "$dir/logs" 1 0 1000 "$BIG_CLIENT"
  publish "$dir/logs"
  wait_for "the aggregator to consume $total trades" 600 at_least "$AGG" tradeflow_aggregator_records_total "$((rec_base + total))"
  wait_for "the snapshots of $total rows" 600 at_least "$AGG" tradeflow_aggregator_snapshot_rows_total "$(( ${s_rows%.*} + total))"
  wait_for "the dashboard to read $total changes" 600 at_least "127.0.0.1:$DPORT" tradeflow_dashboard_summaries_total "$((sum_base + total))"
  agg_rss=$(rss_kb "$agg_pid"); dash_rss=$(rss_kb "$dash_pid")
  echo "scale: $total live rows ($clients clients), load average $(cut -d' ' -f1-3 /proc/loadavg)"
  python3 -c "
print(f'  aggregator RSS {$agg_rss / 1024:.0f} MiB (idle {$agg_rss0 / 1024:.0f}): {($agg_rss - $agg_rss0) * 1024 / $total:.0f} bytes per row')
print(f'  dashboard RSS {$dash_rss / 1024:.0f} MiB (idle {$dash_rss0 / 1024:.0f}): {($dash_rss - $dash_rss0) * 1024 / $total:.0f} bytes per row')"
  snapshot_figures "$total dirty rows" "$total" "$s_micros" "$s_count" "$s_rows"

  # The 3,000-row snapshot to a websocket client, ROUNDS times.
  : >"$dir/tail.times"
  for _ in $(seq 1 "$ROUNDS"); do
    t0=$(date +%s%N)
    "$TF" tail --client "$BIG_CLIENT" --url "ws://127.0.0.1:$DPORT/ws" --json --frames 2 >"$dir/tail.out"
    echo $(( ($(date +%s%N) - t0) / 1000 )) >>"$dir/tail.times"
  done
  python3 - "$dir/tail.times" "$dir/tail.out" <<'PY'
import json, statistics, sys
t = [int(x) / 1e3 for x in open(sys.argv[1])]
frame = next(f for f in map(json.loads, open(sys.argv[2])) if f.get("type") == "snapshot")
n = len(frame.get("rows", []))
print(f"  snapshot to a websocket client ({n} rows, tradeflow tail: connect, hello, snapshot; process start included): median {statistics.median(t):.1f} ms ({min(t):.1f}–{max(t):.1f}, {len(t)} rounds)")
PY

  # A second aggregator joins the group: the partitions it takes over are loaded from Postgres.
  t0=$(date +%s%N)
  "$TF" aggregator --metrics-addr "$AGG2" --snapshot-interval-ms 2000 2>>"$dir/aggregator2.log" & PIDS+=($!)
  wait_for "the second aggregator's partitions" 300 at_least "$AGG2" tradeflow_aggregator_partitions_owned 1
  wait_for "the rebalance" 300 both_at_least tradeflow_aggregator_partitions_owned 12
  wait_for "the new aggregator's loads" 300 at_least "$AGG2" tradeflow_aggregator_partition_loads_total "$(metric "$AGG2" tradeflow_aggregator_partitions_owned)"
  wall=$(( ($(date +%s%N) - t0) / 1000000 ))
  python3 -c "
n, r, m, o = $(metric "$AGG2" tradeflow_aggregator_partition_loads_total), $(metric "$AGG2" tradeflow_aggregator_partition_load_rows_total), $(metric "$AGG2" tradeflow_aggregator_partition_load_microseconds_total), $(metric "$AGG2" tradeflow_aggregator_partitions_owned)
print(f'  rebalance: the new aggregator loaded {n:.0f} partitions ({r:.0f} rows) in Σ {m / 1e3:.0f} ms = {m / max(r, 1):.1f} µs per row; owns {o:.0f} of 12, {$wall} ms after its start')"

  if [ "$rows" = "${SCALES[-1]}" ]; then
    for dirty in ${BENCH_DIRTY:-10000 100000}; do
      # Trades on `dirty` existing rows: clients' rows from symbol 0 again (new lines, same keys).
      dclients=$(( (dirty + 3 * SYMBOLS - 1) / (3 * SYMBOLS) ))
      n=$((dclients * 3 * SYMBOLS))
      m0=$(metric "$AGG" tradeflow_aggregator_snapshot_duration_microseconds_total); c0=$(metric "$AGG" tradeflow_aggregator_snapshots_total)
      r0=$(both tradeflow_aggregator_snapshot_rows_total)
      m20=$(metric "$AGG2" tradeflow_aggregator_snapshot_duration_microseconds_total); c20=$(metric "$AGG2" tradeflow_aggregator_snapshots_total)
      rec0=$(both tradeflow_aggregator_records_total)
      # Appended to the clients' files (a line's identity is its place in its file): the backfill
      # publishes every file again, the lines before are duplicates the aggregators drop.
      T0=$((3600 + dirty / 1000)) write_lines "$dir/logs" "$dclients" 0 "$SYMBOLS"
      lines=$(cat "$dir"/logs/*.log | wc -l)
      publish "$dir/logs"
      wait_for "$lines more records" 600 both_at_least tradeflow_aggregator_records_total $((rec0 + lines))
      wait_for "$n dirty rows snapshotted" 600 both_at_least tradeflow_aggregator_snapshot_rows_total $((r0 + n))
      python3 -c "
m = $(metric "$AGG" tradeflow_aggregator_snapshot_duration_microseconds_total) - $m0 + $(metric "$AGG2" tradeflow_aggregator_snapshot_duration_microseconds_total) - $m20
c = $(metric "$AGG" tradeflow_aggregator_snapshots_total) - $c0 + $(metric "$AGG2" tradeflow_aggregator_snapshots_total) - $c20
r = $(both tradeflow_aggregator_snapshot_rows_total) - $r0
print(f'  snapshot of $n dirty rows among $total live (two aggregators): {r} rows in {c:.0f} partition transactions, Σ {m / 1e3:.1f} ms = {m / max(r, 1):.1f} µs per row')"
    done
  fi
  if [ -n "$p99" ]; then latency "10k trades/s, $total live rows"; fi
  stop_stack
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
