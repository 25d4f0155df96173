#!/usr/bin/env bash
# Replay benchmark: fills `trades` of a local Apache Kafka node with RECORDS trade records (default
# 10 M: the producer writes the logs, `tradeflow ingestor --backfill` publishes them), then times
# `tradeflow backfill --from earliest` (read every partition to its end, apply each trade once,
# replace the rows in Postgres) against `kcat -C` reading the same topic to its end in the same run.
#
# BENCH_LIVE=1: an aggregator runs (caught up) during the backfill, which then takes its partitions
# from it (fenced, leased) and hands them back: the live backfill.
#
#   scripts/bench-replay.sh [RECORDS]     ROUNDS=n (default 3): backfill then kcat, n times; medians
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
case "${1:-}" in -h|--help) sed -n '2,10p' "$0"; exit 0 ;; esac

RECORDS="${1:-10000000}"
CLIENTS=8
ensure_kafka
ensure_postgres
command -v kcat >/dev/null || apt_install kcat
ensure_build_tools  # librdkafka's build: make, pkg-config, OpenSSL's headers
cargo build --release --locked --bin tradeflow >&2
TF="${TRADEFLOW_BIN:-$PWD/target/release/tradeflow}"  # TRADEFLOW_BIN: another build (an A/B)
WORK=$(mktemp -d /tmp/tradeflow-replay.XXXXXX)
DB="tradeflow_replay_$$"
BASE_URL="$DATABASE_URL"
start_kafka "$WORK/kafka"
cleanup() {
  if [ -n "${AGG:-}" ]; then kill -KILL "$AGG" 2>/dev/null || true; fi
  { kill -KILL "$KAFKA_PID"; wait "$KAFKA_PID"; } 2>/dev/null || true
  psql "$BASE_URL" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  stop_throwaway_postgres
  rm -rf "$WORK"
}
trap cleanup EXIT
psql "$BASE_URL" -qc "CREATE DATABASE $DB" >/dev/null
export KAFKA_BROKERS DATABASE_URL="${BASE_URL%/*}/$DB" RUST_LOG=warn

log "writing $RECORDS trade lines ($CLIENTS clients) and publishing them"
"$TF" producer --dir "$WORK/logs" --clients "$(seq -s, 1 "$CLIENTS")" --rate 50 --count "$((RECORDS / CLIENTS))" --seed 3 --start 2026-10-01T00:00:00 >/dev/null 2>&1
"$TF" topics >/dev/null
"$TF" ingestor --backfill --from 2026-10-01 --to 2026-12-31 --dir "$WORK/logs" --state-dir "$WORK/state" 2>/dev/null
rm -rf "$WORK/logs"

now() { date +%s.%N; }
LIVE=""
if [ "${BENCH_LIVE:-0}" = 1 ]; then
  APORT=$(free_port)
  "$TF" aggregator --metrics-addr "127.0.0.1:$APORT" --snapshot-interval-ms 1000 >"$WORK/aggregator.log" 2>&1 &
  AGG=$!
  metric() { curl -fsS "http://127.0.0.1:$APORT/metrics" 2>/dev/null | awk -v m="$1" '$1 == m { print $2 }'; }
  log "live: an aggregator consumes the $RECORDS records first"
  for _ in $(seq 1 1200); do
    [ "$(metric tradeflow_aggregator_records_total)" = "$RECORDS" ] && break
    kill -0 "$AGG" 2>/dev/null || die "the aggregator died: $(tail -5 "$WORK/aggregator.log")"
    sleep 0.5
  done
  [ "$(metric tradeflow_aggregator_records_total)" = "$RECORDS" ] || die "the aggregator did not catch up"
  LIVE="live: an aggregator owned every partition during the backfill"
fi
# ROUNDS rounds (default 3; 1 with BENCH_LIVE) on the same topic, each the backfill then kcat, so
# the medians compare like with like; a backfill replaces the rows, so every round does the same work.
ROUNDS="${ROUNDS:-3}"
[ -n "$LIVE" ] && ROUNDS=1
: >"$WORK/rounds"
for r in $(seq 1 "$ROUNDS"); do
  t0=$(now)
  # The backfill's CPU (user + system, bash's `time`): per record, the figure the machine's load
  # does not move (the wall ratio does: the backfill needs both cores, kcat a fraction of one).
  { TIMEFORMAT='%U %S'; time "$TF" backfill --from earliest >"$WORK/backfill.out" 2>>"$WORK/backfill.err"; } 2>"$WORK/backfill.cpu"
  t1=$(now)
  if [ -n "$LIVE" ]; then
    for _ in $(seq 1 120); do [ "$(metric tradeflow_aggregator_partitions_owned)" = 12 ] && break; sleep 0.5; done
    LIVE="$LIVE; it loaded $(metric tradeflow_aggregator_rebuilt_reloads_total) rebuilt partitions and owns $(metric tradeflow_aggregator_partitions_owned) again"
    kill "$AGG"; wait "$AGG" 2>/dev/null || true
  fi
  kcat -C -b "$KAFKA_BROKERS" -X broker.address.family=v4 -t trades -o beginning -e -q -f '%o\n' >"$WORK/kcat.out"
  t2=$(now)
  read_n=$(sed -n 's/.*records read: \([0-9]*\).*/\1/p' "$WORK/backfill.out" | head -1)
  echo "$r ${read_n:-0} $(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }') $(wc -l <"$WORK/kcat.out") $(awk -v a="$t1" -v b="$t2" 'BEGIN { print b - a }') $(awk '{ print $1 + $2 }' "$WORK/backfill.cpu")" >>"$WORK/rounds"
  log "round $r: $(tail -1 "$WORK/rounds") (round, records, backfill s, kcat records, kcat s, backfill CPU s)"
done
grep -ci "error" "$WORK/backfill.err" >"$WORK/errors" || true
python3 - "$WORK/rounds" "$(cat "$WORK/backfill.out")" "$(cat "$WORK/errors")" "$LIVE" <<'PY'
import os, statistics, sys
rounds = [list(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
out, errors, live = sys.argv[2], sys.argv[3], sys.argv[4]
print(f"replay: one Apache Kafka node, Postgres, tradeflow and kcat on one 2-core machine; {len(rounds)} rounds, medians")
if live:
    print(live)
for r, n, bf, kn, kc, cpu in rounds:
    print(f"  round {r:.0f}: backfill {n / bf / 1e3:6.0f} k records/s ({bf:.2f} s, {cpu / n * 1e6:.2f} µs CPU per record, {cpu / bf:.2f} cores)"
          f"  kcat {kn / kc / 1e3:6.0f} k records/s ({kc:.2f} s)  ratio {(n / bf) / (kn / kc):.2f}")
med = lambda xs: statistics.median(xs)
read = rounds[-1][1]
bf_rate, kc_rate = med([n / bf for _, n, bf, _, _, _ in rounds]), med([kn / kc for _, _, _, kn, kc, _ in rounds])
print(f"tradeflow backfill --from earliest: {read:.0f} records, median {bf_rate / 1e3:6.0f} k records/s  (last: {out.strip()})")
print(f"kcat -C (to the end, offsets only): median {kc_rate / 1e3:6.0f} k records/s")
print(f"ratio tradeflow / kcat: {med([(n / bf) / (kn / kc) for _, n, bf, kn, kc, _ in rounds]):.2f} (median of the rounds' ratios)"
      f"   error lines logged by backfill: {errors}")
print(f"backfill CPU (user + system): median {med([cpu / n * 1e6 for _, n, _, _, _, cpu in rounds]):.2f} µs per record"
      f" ({med([cpu / bf for _, _, bf, _, _, cpu in rounds]):.2f} cores of the machine's {os.cpu_count()}); load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
PY
