#!/usr/bin/env bash
# Ingest benchmark: publishes a pre-generated file set (1 M lines by default) to a local broker
# with `tradeflow ingestor --backfill` (the live read → parse → publish path, exiting when every
# line is acknowledged), then pushes the same bytes with `kcat -P -l` (no parsing) as the peer.
#
#   scripts/bench-ingest.sh [LINES]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

LINES="${1:-1000000}"
CLIENTS=8
PER_CLIENT=$((LINES / CLIENTS))

ensure_kafka
command -v kcat >/dev/null || apt_install kcat
# Debian's kcat links librdkafka 2.0.2, which tansu rejects; run it with the newer librdkafka that
# PyPI's confluent-kafka wheel carries (SPEC §5).
RDK_DIR="$TRADEFLOW_CACHE/librdkafka-wheel"
if [ ! -e "$RDK_DIR/librdkafka.so.1" ]; then
  mkdir -p "$RDK_DIR/whl"
  python3 -m pip download --no-deps --only-binary :all: -d "$RDK_DIR/whl" confluent-kafka >&2
  python3 - "$RDK_DIR" <<'PY'
import glob, os, sys, zipfile
d = sys.argv[1]
z = zipfile.ZipFile(glob.glob(os.path.join(d, "whl", "*.whl"))[0])
for n in z.namelist():
    if "confluent_kafka.libs/" in n and ".so" in n:
        target = os.path.join(d, os.path.basename(n))
        open(target, "wb").write(z.read(n))
        if os.path.basename(n).startswith("librdkafka"):
            os.symlink(os.path.basename(n), os.path.join(d, "librdkafka.so.1"))
PY
fi

cargo build --release --locked --bin tradeflow >&2
TF="$PWD/target/release/tradeflow"
WORK=$(mktemp -d /tmp/tradeflow-bench.XXXXXX)
start_kafka "$WORK/kafka"
trap 'kill -KILL $KAFKA_PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
export KAFKA_BROKERS RUST_LOG=warn

ids=$(seq -s, 1 "$CLIENTS")
log "generating $LINES lines ($CLIENTS clients × $PER_CLIENT)"
"$TF" producer --dir "$WORK/logs" --clients "$ids" --rate 20000 --count "$PER_CLIENT" --seed 1 --start 2026-11-20T00:00:00
BYTES=$(cat "$WORK"/logs/*.log | wc -c)
TRADEFLOW_TOPIC_PREFIX=tf. "$TF" topics >/dev/null
TRADEFLOW_TOPIC_PREFIX=kcat. "$TF" topics >/dev/null

now() { date +%s.%N; }
t0=$(now)
TRADEFLOW_TOPIC_PREFIX=tf. TRADEFLOW_INGESTOR_LINGER_MS="${LINGER_MS:-${TRADEFLOW_INGESTOR_LINGER_MS:-10}}" "$TF" ingestor --backfill --from 2026-11-20 --dir "$WORK/logs" --state-dir "$WORK/state" 2>/dev/null
t1=$(now)
for f in "$WORK"/logs/*.log; do
  LD_LIBRARY_PATH="$RDK_DIR" kcat -P -b "$KAFKA_BROKERS" -X broker.address.family=v4 -t kcat.trades -l "$f"
done
t2=$(now)

python3 - "$LINES" "$BYTES" "$t0" "$t1" "$t2" <<'PY'
import sys
lines, size, t0, t1, t2 = int(sys.argv[1]), int(sys.argv[2]), *map(float, sys.argv[3:])
tf, kc = t1 - t0, t2 - t1
print(f"lines: {lines}  bytes: {size} ({size / 1e6:.0f} MB)")
print(f"tradeflow ingestor: {tf:6.2f} s  {lines / tf / 1e3:7.0f} k lines/s  {size / tf / 1e6:6.1f} MB/s  (parse + JSON + idempotent publish, acked)")
print(f"kcat -P -l:         {kc:6.2f} s  {lines / kc / 1e3:7.0f} k lines/s  {size / kc / 1e6:6.1f} MB/s  (raw lines, no parsing)")
print(f"ratio tradeflow / kcat: {kc / tf:.2f}")
PY
