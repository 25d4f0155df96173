#!/usr/bin/env bash
# SQL benchmark: the snapshot history at scale, the first layout (one unpartitioned summary_history,
# as-of by DISTINCT ON) beside today's (partitioned by trade date, summary_keys, as-of by one probe
# per key). Each gets ROWS history rows (default 50 M) — 1,000 clients × 15 rows (3 accounts ×
# 5 symbols) × ROWS/15,000 versions 10 s apart on one trade date, the rows snapshots write — loaded in
# bulk, with the indexes its migrations define. Then it times, median of 5 after a warm-up, in one
# session (psql's client-side time): the docs' one-client as-of, a whole-market as-of, one row's history, one client's series
# (today's layout), and a snapshot transaction of 1,245 changed rows (about one of 12 partitions' share
# of the 15,000) with the statements the aggregator sends, median of 20.
#
#   scripts/bench-sql.sh [ROWS]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
case "${1:-}" in -h|--help) sed -n '2,12p' "$0"; exit 0 ;; esac

ROWS="${1:-50000000}"
KEYS=15000
VERSIONS=$(( (ROWS + KEYS - 1) / KEYS ))
DAY=2026-11-20
ensure_postgres
ensure_build_tools  # librdkafka's build: make, pkg-config, OpenSSL's headers
cargo build --release --locked --bin tradeflow >&2
TF="$PWD/target/release/tradeflow"
BASE_URL="$DATABASE_URL"
OLD="tradeflow_sql_first_$$" NEW="tradeflow_sql_dated_$$"
cleanup() {
  for db in "$OLD" "$NEW"; do psql "$BASE_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; done
  stop_throwaway_postgres
}
trap cleanup EXIT
url() { echo "${BASE_URL%/*}/$1"; }
for db in "$OLD" "$NEW"; do psql "$BASE_URL" -qc "CREATE DATABASE $db" >/dev/null; done

# The rows: version v of key (c, k) snapshotted at 09:00Z + 10 v s + k ms.
ROWS_SQL="SELECT date '$DAY', c::text, 'CQ0' || (k / 5 + 1), (ARRAY['BANKNIFTY','AAPL','AMZN','FB','GOOG'])[k % 5 + 1],
       v::bigint, v * 50::bigint, v * 48::bigint, v * 50 * 500.25, v * 48 * 499.75, 500.25::numeric, 499.75::numeric, 512.5::numeric,
       timestamp '$DAY 09:00', timestamp '$DAY 09:00' + v * interval '10 s', 0::bigint, 0::bigint, 510.0::numeric, now(),
       c % 12, v * 100::bigint, timestamptz '$DAY 09:00Z' + v * interval '10 s' + k * interval '1 ms'
FROM generate_series(1, 1000) c, generate_series(0, 14) k, generate_series(1, $VERSIONS) v"
CURRENT_SQL="INSERT INTO summary_current ${ROWS_SQL/generate_series(1, $VERSIONS) v/generate_series($VERSIONS, $VERSIONS) v}"

log "first layout: migration 1, $((KEYS * VERSIONS)) history rows"
psql "$(url "$OLD")" -qX -v ON_ERROR_STOP=1 >/dev/null <<SQL
\i migrations/20261123000001_summary.sql
SET maintenance_work_mem = '1GB';
ALTER TABLE summary_history DROP CONSTRAINT summary_history_pkey;
DROP INDEX summary_history_by_time, summary_history_by_client;
INSERT INTO summary_history $ROWS_SQL;
ALTER TABLE summary_history ADD PRIMARY KEY (trade_date, client_id, account_id, symbol, snapshot_at);
CREATE INDEX summary_history_by_time ON summary_history (snapshot_at);
CREATE INDEX summary_history_by_client ON summary_history (client_id, trade_date, snapshot_at);
$CURRENT_SQL;
VACUUM ANALYZE;
SQL
log "today's layout: every migration, the same rows"
"$TF" history --database-url "$(url "$NEW")" >/dev/null
psql "$(url "$NEW")" -qX -v ON_ERROR_STOP=1 >/dev/null <<SQL
SET maintenance_work_mem = '1GB';
SELECT summary_history_partition('$DAY');
ALTER TABLE summary_history DROP CONSTRAINT summary_history_pkey;
INSERT INTO summary_history $ROWS_SQL;
ALTER TABLE summary_history ADD PRIMARY KEY (trade_date, client_id, account_id, symbol, snapshot_at);
$CURRENT_SQL;
INSERT INTO summary_keys SELECT trade_date, client_id, account_id, symbol FROM summary_current;
VACUUM ANALYZE;
SQL

AT="$DAY 12:00Z"
declare -A QUERY=(
  [one_client]="SELECT account_id, symbol, net_qty, trade_count FROM summary_as_of('$AT') WHERE trade_date = '$DAY' AND client_id = '1' ORDER BY account_id, symbol"
  [whole_market]="SELECT symbol, sum(net_qty) FROM summary_as_of('$AT') WHERE trade_date = '$DAY' GROUP BY symbol"
  [row_history]="SELECT snapshot_at, trade_count, buy_qty - sell_qty AS net_qty, last_price FROM summary_history WHERE trade_date = '$DAY' AND client_id = '1' AND account_id = 'CQ01' AND symbol = 'AAPL' ORDER BY snapshot_at"
  [series]="SELECT at, symbol, sum(net_qty) FROM summary_series('1', '$DAY', '1 minute') GROUP BY at, symbol"
)
# The statements of one snapshot of 1,250 rows (store.rs), as a transaction; \$1 = the snapshot's time.
snapshot_sql() { # LAYOUT N
  local keys=""
  [ "$1" = new ] && keys="INSERT INTO summary_keys SELECT trade_date, client_id, account_id, symbol FROM snap ORDER BY 1, 2, 3, 4 ON CONFLICT DO NOTHING;"
  cat <<SQL
BEGIN;
UPDATE partition_offsets SET next_offset = next_offset + 1, updated_at = now() WHERE topic = 'trades' AND partition = 0 AND epoch = 1;
CREATE TEMP TABLE snap ON COMMIT DROP AS
  SELECT trade_date, client_id, account_id, symbol, trade_count + $2 AS trade_count, buy_qty, sell_qty, buy_notional, sell_notional,
         avg_buy_price, avg_sell_price, last_price, first_trade_at, last_trade_at, first_trade_at_ns, last_trade_at_ns,
         mark_price, mark_at, source_partition, source_offset + $2 AS source_offset, timestamptz '$DAY 23:00Z' + $2 * interval '1 s' AS snapshot_at
  FROM summary_current WHERE client_id::int % 12 = 0 AND client_id::int <= 1000;
INSERT INTO summary_current SELECT * FROM snap
  ON CONFLICT (trade_date, client_id, account_id, symbol) DO UPDATE SET trade_count = EXCLUDED.trade_count,
    source_offset = EXCLUDED.source_offset, snapshot_at = EXCLUDED.snapshot_at;
INSERT INTO summary_history SELECT * FROM snap ON CONFLICT DO NOTHING;
$keys
INSERT INTO file_progress SELECT client_id, date '$DAY', 0, $2, 0 FROM snap GROUP BY client_id
  ON CONFLICT (client_id, file_date, generation) DO UPDATE SET max_offset = EXCLUDED.max_offset;
COMMIT;
SQL
}
# Times SQL on DB in one session (as an application's pooled connection would): a warm-up run,
# then RUNS runs; prints the median in ms (psql's \timing of each statement, summed per run).
time_sql() { # DB RUNS SQL-PRODUCER…
  local db=$1 runs=$2; shift 2
  { echo '\timing on'; for i in $(seq 0 "$runs"); do echo "\echo run $i"; "$@" "$i"; done; } \
    | psql "$(url "$db")" -qX -v ON_ERROR_STOP=1 2>&1 \
    | awk '/^run / { if (r > 0) print t; r = $2; t = 0 } /^Time: / { t += $2 } END { print t }' \
    | sort -n | awk '{ a[NR] = $1 } END { printf "%.2f\n", a[int((NR + 1) / 2)] }'
}
query() { echo "${QUERY[$1]};"; }
psql "$(url "$OLD")" -qXc "INSERT INTO partition_offsets VALUES ('trades', 0, 0, 1, now())" >/dev/null
psql "$(url "$NEW")" -qXc "INSERT INTO partition_offsets VALUES ('trades', 0, 0, 1, now())" >/dev/null
snap_old() { snapshot_sql old "$1"; }
snap_new() { snapshot_sql new "$1"; }

echo
echo "SQL on the snapshot history: $((KEYS * VERSIONS)) rows ($KEYS keys × $VERSIONS versions, one trade date), Postgres $(psql "$BASE_URL" -AtXc 'SHOW server_version'),"
echo "default settings; Postgres and this script share one 2-core machine. Medians in ms (psql client-side time, one session, after a warm-up)."
echo
printf '%-14s %14s %14s %8s\n' "query" "first layout" "by date" "speed-up"
for q in one_client whole_market row_history series; do
  old="—"; [ "$q" != series ] && old=$(time_sql "$OLD" 5 query "$q")
  new=$(time_sql "$NEW" 5 query "$q")
  ratio="—"; [ "$old" != "—" ] && ratio=$(awk -v a="$old" -v b="$new" 'BEGIN { printf "%.1f×", a / b }')
  printf '%-14s %14s %14s %8s\n' "$q" "$old" "$new" "$ratio"
done
old=$(time_sql "$OLD" 20 snap_old)
new=$(time_sql "$NEW" 20 snap_new)
printf '%-14s %14s %14s %8s\n' "snapshot_tx" "$old" "$new" "$(awk -v a="$old" -v b="$new" 'BEGIN { printf "%.2f×", b / a }')"
echo "(snapshot_tx: 1,245 rows — clients 12, 24, … 996 — staged in a temp table, upserted into summary_current, appended to summary_history (+ summary_keys by date), file_progress, the offset; ratio = by date / first)"
echo "history on disk: first layout $(psql "$(url "$OLD")" -AtXc "SELECT pg_size_pretty(pg_total_relation_size('summary_history'))"), by date $(psql "$(url "$NEW")" -AtXc "SELECT pg_size_pretty(sum(pg_total_relation_size(inhrelid))) FROM pg_inherits WHERE inhparent = 'summary_history'::regclass")"
