# The latency benchmarks' stack (sourced by bench-latency.sh, bench-soak.sh via it, bench-ceiling.sh, bench-recovery.sh
# and bench-fanout.sh): builds the release binaries, starts a fresh Apache Kafka node, database, topics,
# ingestor, aggregator and dashboard per stack, runs the e2e_latency client, and reports the per-hop
# quantiles, each process's CPU and CPU per trade between two scrapes, and the load average.
SUMMARY_PARTS="${SUMMARY_PARTS:-${BENCH_SUMMARIES_PARTITIONS:-1}}"
ensure_kafka
ensure_postgres
# Two builds, as dev.sh builds: the binary alone (dev.sh's build is reused), then the latency client
# from its own package, which resolves the same features as the binary (Cargo.toml: rand_chacha) and
# so compiles only the example itself. Naming `-p tradeflow` with `--example` pulls the root package's
# dev-dependencies (the browser test's TLS stack) into the release build: 65 crates, ~6 minutes on
# 2 cores (docs/benchmarks.md, "Build time").
ensure_build_tools  # librdkafka's build: make, pkg-config, OpenSSL's headers
cargo build --release --locked --bin tradeflow >&2
cargo build --release --locked -p tradeflow-dashboard --example e2e_latency >&2
TF="${TRADEFLOW_BIN:-$PWD/target/release/tradeflow}"  # TRADEFLOW_BIN: another build (an A/B), as dev.sh
BENCH="$PWD/target/release/examples/e2e_latency"
WORK=$(mktemp -d /tmp/tradeflow-latency.XXXXXX)
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
cleanup() {
  stop_stack
  stop_throwaway_postgres
  rm -rf "$WORK"
}
trap cleanup EXIT

# start_aggregator: the stack's aggregator (again: bench-recovery.sh restarts it after a kill -9, as
# a supervisor would, with the same flags); its pid in AGG_PID, its log $STACK_DIR/aggregator.log
# (AGG_RUST_LOG: its log filter, default the stack's RUST_LOG).
start_aggregator() {
  RUST_LOG="${AGG_RUST_LOG:-$RUST_LOG}" TRADEFLOW_SNAPSHOT_INTERVAL_MS=2000 "$TF" aggregator 2>>"$STACK_DIR/aggregator.log" &
  AGG_PID=$!
}

# start_stack PARTITIONS: a fresh broker, database, topics and services; then a warm-up
# (BENCH_WARMUP=none: none — the services answer and the stack is handed over cold).
start_stack() {
  local partitions=$1 dir dport
  STACKS=$((${STACKS:-0} + 1)); dir="$WORK/stack$STACKS"; STACK_DIR=$dir
  dport=$(free_port)
  DB="tradeflow_bench_$$_$STACKS"
  mkdir -p "$dir/logs"
  start_kafka "$dir/broker"
  psql "$BASE_URL" -qc "CREATE DATABASE $DB" >/dev/null
  export KAFKA_BROKERS DATABASE_URL="${BASE_URL%/*}/$DB" TRADE_LOG_DIR="$dir/logs" RUST_LOG=warn
  AGG_METRICS="127.0.0.1:$(free_port)"; DASH_METRICS="127.0.0.1:$dport"; ING_METRICS="127.0.0.1:$(free_port)"
  export TRADEFLOW_INGESTOR_METRICS_ADDR="$ING_METRICS" TRADEFLOW_AGGREGATOR_METRICS_ADDR="$AGG_METRICS"
  TRADEFLOW_TRADES_PARTITIONS=$partitions TRADEFLOW_SUMMARIES_PARTITIONS=$SUMMARY_PARTS "$TF" topics >/dev/null
  "$TF" ingestor --state-dir "$dir/state" 2>>"$dir/ingestor.log" & PIDS+=($!)
  start_aggregator; PIDS+=("$AGG_PID")
  "$TF" dashboard --auth-off --listen "127.0.0.1:$dport" 2>>"$dir/dashboard.log" & PIDS+=($!)
  WS="ws://127.0.0.1:$dport/ws"
  local deadline=$((SECONDS + 60))
  until curl -sf "http://127.0.0.1:$dport/readyz" >/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || die "dashboard not ready"; sleep 0.2
  done
  # Warm-up (not reported): the consumer group settles, rows and feeds exist, connections are hot;
  # BENCH_WARMUP="SECONDS RATE" (default "3 1000") — the soak warms the broker's JIT at its own rate.
  [ "${BENCH_WARMUP:-}" = none ] && return 0
  local warm=(${BENCH_WARMUP:-3 1000})
  "$BENCH" --logs "$dir/logs" --ws "$WS" --seconds "${warm[0]}" --label warm-up --rate "${warm[1]}" --clients 10 --subscribers 10 >/dev/null
}

run() { "$BENCH" --logs "$TRADE_LOG_DIR" --ws "$WS" --seconds "$SECONDS_PER_RUN" --window-secs "${BENCH_WINDOW:-0}" "$@"; }

# Each load on a fresh stack (broker, database, services), so no run inherits another's backlog.
measure() {
  start_stack "${BENCH_PARTITIONS:-12}"
  scrape before
  run "$@"
  scrape after
  report
  stop_stack
}

# The services' metrics and every process's CPU time, before and after the measured load.
scrape() {
  curl -sf "http://$ING_METRICS/metrics" >"$WORK/ing.$1" || true
  curl -sf "http://$AGG_METRICS/metrics" >"$WORK/agg.$1" || true
  curl -sf "http://$DASH_METRICS/metrics" >"$WORK/dash.$1" || true
  local pg
  pg=$(pgrep -d ' ' -x postgres || true)
  printf '%s %s %s %s %s %s\n' "$(date +%s.%N)" "$(cpu_ticks "${PIDS[0]}")" "$(cpu_ticks "${PIDS[1]}")" \
    "$(cpu_ticks "${PIDS[2]}")" "$(cpu_ticks "$KAFKA_PID")" "$(cpu_ticks $pg)" >"$WORK/cpu.$1"
}

# Where the time goes (the freshness histograms over the measured load), and who used the CPU.
report() {
  hop_quantiles "1 append → produce (ingestor)" "$WORK/ing.before" "$WORK/ing.after" tradeflow_ingestor_fill_age_seconds
  hop_quantiles "2 trades hop (produce → aggregator reads)" "$WORK/agg.before" "$WORK/agg.after" tradeflow_aggregator_record_age_seconds
  hop_quantiles "3 aggregation (read → changelog produce)" "$WORK/agg.before" "$WORK/agg.after" tradeflow_aggregator_apply_seconds
  hop_quantiles "4 summaries hop (produce → dashboard reads)" "$WORK/dash.before" "$WORK/dash.after" tradeflow_dashboard_summary_age_seconds
  hop_quantiles "5 fan-out (applied → frame written)" "$WORK/dash.before" "$WORK/dash.after" tradeflow_dashboard_fanout_seconds
  python3 - "$WORK/cpu.before" "$WORK/cpu.after" "$(getconf CLK_TCK)" "$WORK/agg.before" "$WORK/agg.after" <<'PY'
import os, sys
b, a = (list(map(float, open(p).read().split())) for p in sys.argv[1:3])
hz, secs = float(sys.argv[3]), a[0] - b[0]
names = ["ingestor", "aggregator", "dashboard", "kafka", "postgres"]
cpu = [(a[i + 1] - b[i + 1]) / hz for i in range(len(names))]  # CPU-seconds over the load
print("  CPU (% of one core): " + "  ".join(f"{n} {c / secs * 100:.0f}" for n, c in zip(names, cpu)))
def records(path):
    try:
        return next(float(l.split()[1]) for l in open(path) if l.startswith("tradeflow_aggregator_records_total "))
    except (OSError, StopIteration):
        return 0.0
# Cost per trade: each process's CPU-seconds (user + system, /proc/PID/stat) over the trades the
# aggregator consumed between the two scrapes; the broker is its JVM.
trades = records(sys.argv[5]) - records(sys.argv[4])
if trades > 0:
    print("  CPU per trade (µs): " + "  ".join(f"{n} {c / trades * 1e6:.1f}" for n, c in zip(names, cpu))
          + f"  pipeline {sum(cpu[:4]) / trades * 1e6:.1f}  ({trades:.0f} trades; ingestor + aggregator + dashboard + broker"
          + f" {sum(cpu[:4]) / secs:.2f} cores at {trades / secs:.0f} trades/s; postgres counts every cluster on the machine)")
print(f"  load average (1, 5, 15 min): {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
PY
}

