# The latency benchmarks' stack (sourced by bench-latency.sh, bench-soak.sh via it, bench-ceiling.sh, bench-recovery.sh
# and bench-fanout.sh): builds the release binaries, starts a fresh Apache Kafka node, database, topics,
# ingestor, aggregator and dashboard per stack, runs the e2e_latency client, and reports the per-hop
# quantiles, each process's CPU and CPU per trade between two scrapes, and the load average.
SUMMARY_PARTS="${SUMMARY_PARTS:-${BENCH_SUMMARIES_PARTITIONS:-1}}"
ensure_kafka
ensure_jdk  # the broker's requests and threads in the report
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
# stop_services: the stack's services (SIGTERM, then waited for); the broker and database stay.
stop_services() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  PIDS=()
}
stop_stack() {
  stop_services
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
  [ "${BENCH_BACKFILL_COST:-0}" = 1 ] && backfill_cost
  stop_stack
}

# The live ingestor's CPU per line against its backfill's on the same lines (issue 28: within 3 ×):
# the services stopped, `tradeflow ingestor --backfill` republishes the load's files into fresh
# topics on the same broker, timed with bash's `time` (user + system). BENCH_BACKFILL_COST=1 (the soak).
backfill_cost() {
  local day lines cpu
  stop_services
  day=$(date -u +%F)
  lines=$(cat "$TRADE_LOG_DIR"/*."$(date -u +%Y.%m.%d)".log 2>/dev/null | wc -l)
  TRADEFLOW_TOPIC_PREFIX=backfill. "$TF" topics >/dev/null
  cpu=$( { TIMEFORMAT='%U %S'; time TRADEFLOW_TOPIC_PREFIX=backfill. "$TF" ingestor --backfill --from "$day" \
      --dir "$TRADE_LOG_DIR" --state-dir "$STACK_DIR/backfill-state" 2>>"$STACK_DIR/backfill.log" >/dev/null; } 2>&1 | awk '{ print $1 + $2 }')
  python3 - "$lines" "$cpu" "$WORK/live-ingestor-us" <<'PY'
import sys
lines, cpu = int(sys.argv[1]), float(sys.argv[2])
try:
    live = float(open(sys.argv[3]).read())
except (OSError, ValueError):
    live = None
if lines == 0:
    print("  backfill cost: no lines of today's files to republish (a run across midnight UTC?)")
else:
    per = cpu / lines * 1e6
    tail = f"; the live ingestor above {live:.1f} µs per trade = {live / per:.1f} × its backfill (issue 28: ≤ 3 ×)" if live else ""
    print(f"  ingestor --backfill of the same {lines} lines after the load (same broker, services stopped): CPU {cpu:.2f} s = {per:.2f} µs per line{tail}")
PY
}

# The services' metrics and every process's CPU time, before and after the measured load.
# The broker's served requests by type (scripts/kafka/RequestCounts.java, its JMX meters) are read
# outside the CPU window: before the CPU times, and after them.
scrape() {
  [ "$1" = before ] && broker_requests "$1" && broker_threads >"$WORK/threads.$1"
  curl -sf "http://$ING_METRICS/metrics" >"$WORK/ing.$1" || true
  curl -sf "http://$AGG_METRICS/metrics" >"$WORK/agg.$1" || true
  curl -sf "http://$DASH_METRICS/metrics" >"$WORK/dash.$1" || true
  local pg
  pg=$(pgrep -d ' ' -x postgres || true)
  printf '%s %s %s %s %s %s\n' "$(date +%s.%N)" "$(cpu_ticks "${PIDS[0]}")" "$(cpu_ticks "${PIDS[1]}")" \
    "$(cpu_ticks "${PIDS[2]}")" "$(cpu_ticks "$KAFKA_PID")" "$(cpu_ticks $pg)" >"$WORK/cpu.$1"
  [ "$1" = after ] && broker_requests "$1" && broker_threads >"$WORK/threads.$1"
  return 0
}
# The broker JVM's threads: "NAME CPU-MS" for every thread, from `jcmd PID Thread.print` (its
# `cpu=` per thread; the JVM's GC and compiler threads too), to say where the broker's CPU goes.
broker_threads() {
  jcmd "$KAFKA_PID" Thread.print 2>/dev/null | sed -n 's/^"\([^"]*\)".* cpu=\([0-9.]*\)ms.*/\1\t\2/p' || true
}
broker_requests() {
  java "$TRADEFLOW_ROOT/scripts/kafka/RequestCounts.java" "$KAFKA_PID" >"$WORK/req.$1" 2>>"$STACK_DIR/requests.log" || : >"$WORK/req.$1"
}

# Where the time goes (the freshness histograms over the measured load), and who used the CPU.
report() {
  rm -f "$WORK/live-ingestor-us"  # this load's, written below when trades were consumed
  hop_quantiles "1 append → produce (ingestor)" "$WORK/ing.before" "$WORK/ing.after" tradeflow_ingestor_fill_age_seconds
  hop_quantiles "2 trades hop (produce → aggregator reads)" "$WORK/agg.before" "$WORK/agg.after" tradeflow_aggregator_record_age_seconds
  hop_quantiles "3 aggregation (read → changelog produce)" "$WORK/agg.before" "$WORK/agg.after" tradeflow_aggregator_apply_seconds
  hop_quantiles "4 summaries hop (produce → dashboard reads)" "$WORK/dash.before" "$WORK/dash.after" tradeflow_dashboard_summary_age_seconds
  hop_quantiles "5 fan-out (applied → frame written)" "$WORK/dash.before" "$WORK/dash.after" tradeflow_dashboard_fanout_seconds
  python3 - "$WORK/cpu.before" "$WORK/cpu.after" "$(getconf CLK_TCK)" "$WORK/agg.before" "$WORK/agg.after" \
    "$WORK/req.before" "$WORK/req.after" "$WORK/threads.before" "$WORK/threads.after" <<'PY'
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
    with open(os.path.join(os.path.dirname(sys.argv[1]), "live-ingestor-us"), "w") as f:
        f.write(f"{cpu[0] / trades * 1e6:.3f}")
    print("  CPU per trade (µs): " + "  ".join(f"{n} {c / trades * 1e6:.1f}" for n, c in zip(names, cpu))
          + f"  pipeline {sum(cpu[:4]) / trades * 1e6:.1f}  ({trades:.0f} trades; ingestor + aggregator + dashboard + broker"
          + f" {sum(cpu[:4]) / secs:.2f} cores at {trades / secs:.0f} trades/s; postgres counts every cluster on the machine)")
# What the broker serves per second, and its CPU per request (its JVM's CPU over every request it
# answered in the window: produce, fetch, the KRaft controller's own).
def requests(path):
    try:
        return {k: float(v) for k, v in (l.split() for l in open(path) if l.strip())}
    except (OSError, ValueError):
        return {}
rb, ra = requests(sys.argv[6]), requests(sys.argv[7])
served = {k: ra[k] - rb.get(k, 0.0) for k in ra}
# A consumer's fetch marks both Kafka's `Fetch` and `FetchConsumer` meters (a replica's both `Fetch`
# and `FetchFollower`): the sub-counts are neither shown nor added.
total = sum(v for k, v in served.items() if k not in ("FetchConsumer", "FetchFollower"))
if total > 0:
    top = [(k, v) for k, v in sorted(served.items(), key=lambda kv: -kv[1])
           if v / secs >= 1 and k not in ("FetchConsumer", "FetchFollower")]
    print("  broker requests/s: " + "  ".join(f"{k} {v / secs:.0f}" for k, v in top)
          + f"  → broker CPU {cpu[3] / total * 1e6:.1f} µs per request"
          + (f", {served.get('Produce', 0) / trades:.3f} produce requests per trade" if trades > 0 else ""))
else:
    print("  broker requests/s: not read (scripts/kafka/RequestCounts.java; see the stack's requests.log)")
# The broker's CPU by thread kind (names with their numbers stripped: a pool counts as one).
import re
def threads(path):
    out = {}
    try:
        for l in open(path):
            name, ms = l.rstrip("\n").rsplit("\t", 1)
            kind = re.sub(r"[-_# ]?[0-9]+", "", name).strip("-_ ") or name
            out[kind] = out.get(kind, 0.0) + float(ms) / 1e3
    except (OSError, ValueError):
        pass
    return out
tb, ta = threads(sys.argv[8]), threads(sys.argv[9])
used = sorted(((k, v - tb.get(k, 0.0)) for k, v in ta.items()), key=lambda kv: -kv[1])
if cpu[3] > 0 and used:
    shown = [(k, c) for k, c in used if c / cpu[3] >= 0.02]
    print("  broker CPU by thread (jcmd Thread.print, % of the broker's): " + ";  ".join(f"{k} {c / cpu[3] * 100:.0f}" for k, c in shown)
          + f";  others {sum(c for _, c in used[len(shown):]) / cpu[3] * 100:.0f}")
print(f"  load average (1, 5, 15 min): {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
PY
}

