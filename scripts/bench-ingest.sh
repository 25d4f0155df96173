#!/usr/bin/env bash
# Ingest benchmark: publishes a pre-generated file set (1 M lines by default) to a local Apache Kafka
# with `tradeflow ingestor --backfill` (the live read → parse → JSON → idempotent publish path,
# exiting when every line is acknowledged), and, as the peer, pushes the same bytes as raw lines
# with `kcat -P -l`, uncompressed and lz4-compressed like the ingestor. A warm-up round (the broker's
# JVM compiles its hot paths), then ROUNDS rounds (default 5), each on fresh topics, interleaved;
# prints every round and the medians.
#
#   scripts/bench-ingest.sh [LINES]     LINGER_MS=n sets the ingestor's linger (default: its own)
#   FORMAT=csv|jsonl scripts/bench-ingest.sh   the same with `tradeflow producer --format` and the
#                                             ingestor reading examples/mappings/$FORMAT.toml
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

LINES="${1:-1000000}"
FORMAT="${FORMAT:-seed}"
case "$FORMAT" in
  seed) EXT=log; MAPPING=() ;;
  csv|jsonl) EXT=$FORMAT; MAPPING=(--mapping "$PWD/examples/mappings/$FORMAT.toml") ;;
  *) echo "FORMAT must be seed, csv or jsonl" >&2; exit 2 ;;
esac
ROUNDS="${ROUNDS:-5}"
CLIENTS=8
PER_CLIENT=$((LINES / CLIENTS))

ensure_kafka
command -v kcat >/dev/null || apt_install kcat
ensure_build_tools  # librdkafka's build: make, pkg-config, OpenSSL's headers
cargo build --release --locked --bin tradeflow >&2
TF="$PWD/target/release/tradeflow"
WORK=$(mktemp -d /tmp/tradeflow-bench.XXXXXX)
start_kafka "$WORK/kafka"
trap '{ kill -KILL $KAFKA_PID; wait $KAFKA_PID; } 2>/dev/null || true; rm -rf "$WORK"' EXIT
export KAFKA_BROKERS RUST_LOG=warn

ids=$(seq -s, 1 "$CLIENTS")
log "generating $LINES lines ($CLIENTS clients × $PER_CLIENT)"
"$TF" producer --format "$FORMAT" --dir "$WORK/logs" --clients "$ids" --rate 20000 --count "$PER_CLIENT" --seed 1 --start 2026-11-20T00:00:00
BYTES=$(cat "$WORK"/logs/*."$EXT" | wc -c)
KCAT_LIBRDKAFKA=$(kcat -V 2>&1 | sed -n 's/.*librdkafka \([0-9.]*\).*/\1/p' | head -1)

now() { date +%s.%N; }
# Each run starts with no dirty pages: the previous run's writes (330 MB uncompressed for kcat) are
# flushed to disk first, not while the next one is timed.
timed() { sync; local t0; t0=$(now); "$@"; echo "$(now) $t0" | awk '{ printf "%.3f\n", $1 - $2 }'; }
kcat_push() { # PREFIX [kcat args…]
  local prefix=$1; shift
  for f in "$WORK"/logs/*."$EXT"; do kcat -P -b "$KAFKA_BROKERS" -X broker.address.family=v4 -t "${prefix}trades" "$@" -l "$f"; done
}
# Every round's topics first: a run must not share the broker with partitions still being created.
for r in $(seq 0 "$ROUNDS"); do
  for p in tf kcat kcatlz4; do TRADEFLOW_TOPIC_PREFIX="r$r.$p." "$TF" topics >/dev/null; done
done
: >"$WORK/times"
for r in $(seq 0 "$ROUNDS"); do
  # The ingestor's CPU (user + system seconds, bash's `time`) besides the wall time: its cost per line.
  t=$( { TIMEFORMAT='%U %S'; time timed env TRADEFLOW_TOPIC_PREFIX="r$r.tf." ${LINGER_MS:+TRADEFLOW_INGESTOR_LINGER_MS=$LINGER_MS} \
      "$TF" ingestor "${MAPPING[@]}" --backfill --from 2026-11-20 --dir "$WORK/logs" --state-dir "$WORK/state" 2>/dev/null; } 2>&1)
  echo "tradeflow $(echo "$t" | head -1)" >>"$WORK/times"
  echo "$t" | tail -1 | awk '{ print "tradeflow-cpu", $1 + $2 }' >>"$WORK/times"
  # kcat's CPU the same way (its runs, one per file, summed): the peer's cost per line in the same run.
  for k in kcat kcat-lz4; do
    [ "$k" = kcat ] && args=("r$r.kcat.") || args=("r$r.kcatlz4." -z lz4)
    t=$( { TIMEFORMAT='%U %S'; time timed kcat_push "${args[@]}"; } 2>&1)
    echo "$k $(echo "$t" | head -1)" >>"$WORK/times"
    echo "$t" | tail -1 | awk -v k="$k" '{ print k "-cpu", $1 + $2 }' >>"$WORK/times"
  done
  if [ "$r" = 0 ]; then
    log "warm-up round (not counted): $(tail -6 "$WORK/times" | tr '\n' ' ')"
    : >"$WORK/times"
  else
    log "round $r: $(tail -6 "$WORK/times" | tr '\n' ' ')"
  fi
done

python3 - "$LINES" "$BYTES" "$WORK/times" "$KCAT_LIBRDKAFKA" "$FORMAT" <<'PY'
import statistics, sys
lines, size, path, rdk = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
t = {}
for line in open(path):
    name, secs = line.split()
    t.setdefault(name, []).append(float(secs))
print(f"ingest ({sys.argv[5]} format): {lines} lines, {size / 1e6:.0f} MB, {len(t['tradeflow'])} rounds; Apache Kafka, services and load on one 2-core machine")
rows = [("tradeflow ingestor --backfill", "tradeflow", "parse + JSON + lz4 + idempotent acks=all"),
        ("kcat -P -l", "kcat", f"raw lines, no compression, librdkafka {rdk}"),
        ("kcat -P -l -z lz4", "kcat-lz4", f"raw lines, lz4, librdkafka {rdk}")]
for label, key, what in rows:
    m = statistics.median(t[key])
    print(f"{label:<32} median {m:6.2f} s ({min(t[key]):.2f}–{max(t[key]):.2f})  {lines / m / 1e3:7.0f} k lines/s  {size / m / 1e6:6.1f} MB/s  ({what})")
tf = statistics.median(t["tradeflow"])
cpu = statistics.median(t["tradeflow-cpu"])
print(f"tradeflow ingestor --backfill CPU: median {cpu:.2f} s (user + system) = {cpu / lines * 1e6:.2f} µs per line")
for key, label in (("kcat-cpu", "kcat -P -l"), ("kcat-lz4-cpu", "kcat -P -l -z lz4")):
    c = statistics.median(t[key])
    print(f"{label} CPU: median {c:.2f} s = {c / lines * 1e6:.2f} µs per line (tradeflow {cpu / c:.2f} ×)")
print(f"ratio tradeflow / kcat:        {statistics.median(t['kcat']) / tf:.2f}")
print(f"ratio tradeflow / kcat -z lz4: {statistics.median(t['kcat-lz4']) / tf:.2f}")
PY
