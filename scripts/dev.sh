#!/usr/bin/env bash
# Runs the whole pipeline locally without Docker: Apache Kafka (native, from its Maven jars),
# Postgres, topics, and every tradeflow service. Ctrl-C stops everything. A service or the broker
# that dies is restarted (as compose's `restart: unless-stopped`), unless it dies 5 times in a minute.
#
#   scripts/dev.sh [--durable]     --durable keeps the broker's log dir (.tradeflow/broker) and the database
#
# Settings (environment): KAFKA_PORT (9092), TRADE_LOG_CID (1,2,3), TRADEFLOW_STATE (.tradeflow),
# DASHBOARD_PORT (8080), TRADEFLOW_AUTH_SECRET (generated once into $TRADEFLOW_STATE/auth-secret),
# TRADEFLOW_DEV_DB (tradeflow_dev), TRADEFLOW_BIN (a built tradeflow binary: skips the release build);
# every service's own variables (docs/services.md) pass through.
# Stop it with Ctrl-C, or SIGTERM/SIGINT to its pid (a script's background job ignores SIGINT: use
# SIGTERM there). The services run in their own sessions, so only this script sees a terminal's
# Ctrl-C and stops them in order; one stopped from outside (even with status 0) is restarted.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

DURABLE=0
for arg in "$@"; do
  case "$arg" in
    --durable) DURABLE=1 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) die "unknown argument $arg" ;;
  esac
done

STATE="${TRADEFLOW_STATE:-$PWD/.tradeflow}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
DASHBOARD_PORT="${DASHBOARD_PORT:-8080}"
CLIENTS="${TRADE_LOG_CID:-1,2,3}"
mkdir -p "$STATE/logs" "$STATE/broker"
# One run per state directory: a second one would wipe the running one's broker and cursors. (The
# lock's fd 9 is closed for every long-lived child — `9>&-` — so it ends with this script.)
exec 9>>"$STATE/dev.lock"
flock -n 9 || die "another scripts/dev.sh runs on $STATE (pid $(cat "$STATE/dev.pid" 2>/dev/null || echo "?")): stop it first (Ctrl-C), or give this one its own TRADEFLOW_STATE, KAFKA_PORT, DASHBOARD_PORT, TRADEFLOW_INGESTOR_METRICS_ADDR, TRADEFLOW_AGGREGATOR_METRICS_ADDR and TRADEFLOW_DEV_DB"
echo $$ >"$STATE/dev.pid"

# From here on every exit stops what was started — also an early one (Ctrl-C during the build, a
# failed setup step), which would otherwise leave the throwaway Postgres running.
PIDS=()
cleanup() {
  log "stopping"
  # Services first (they flush to the broker and snapshot to Postgres), then the broker.
  for pid in "${PIDS[@]}"; do [ "$pid" = "${KAFKA_PID:-}" ] || kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do [ "$pid" = "${KAFKA_PID:-}" ] || wait "$pid" 2>/dev/null || true; done
  [ -z "${SAMPLE_PID:-}" ] || kill "$SAMPLE_PID" 2>/dev/null || true
  [ -z "${KAFKA_PID:-}" ] || stop_kafka "$KAFKA_PID"
  stop_throwaway_postgres
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

ensure_build_tools
ensure_kafka
ensure_postgres 9>&-
SETUP_SECS=$SECONDS   # bash's SECONDS: since this script started
# The snapshot tables live in their own database. Without --durable every run starts with a fresh
# broker (empty topics), so the tables (and their stored offsets) must start empty too; --durable
# keeps both.
DEV_DB="${TRADEFLOW_DEV_DB:-tradeflow_dev}"
[[ "$DEV_DB" =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || die "TRADEFLOW_DEV_DB must be a plain Postgres name (lower-case letters, digits, _; at most 63): got '$DEV_DB'"
if [ "$DURABLE" = 0 ]; then
  psql "$DATABASE_URL" -qc "DROP DATABASE IF EXISTS $DEV_DB WITH (FORCE)" >/dev/null
  rm -rf "$STATE/ingestor" "$STATE/broker"   # a fresh broker; re-publish the existing logs into it
fi
psql "$DATABASE_URL" -Atqc "SELECT 1 FROM pg_database WHERE datname = '$DEV_DB'" | grep -q 1 \
  || psql "$DATABASE_URL" -qc "CREATE DATABASE $DEV_DB" >/dev/null
DATABASE_URL="${DATABASE_URL%/*}/$DEV_DB"
if [ -n "${TRADEFLOW_BIN:-}" ]; then
  TF="$TRADEFLOW_BIN"
else
  log "building tradeflow (release)"
  build_start=$SECONDS
  cargo build --release --locked --bin tradeflow >&2
  BUILD_SECS=$((SECONDS - build_start))
  TF="$PWD/target/release/tradeflow"
fi
STACK_START=$SECONDS


declare -A NAME_OF   # pid → service
# start_service NAME: starts one service (or the broker) in the background and records its pid.
start_service() {
  case "$1" in
    broker) start_kafka "$STATE/broker" "$KAFKA_PORT" 9>&-; PIDS+=("$KAFKA_PID"); NAME_OF[$KAFKA_PID]=broker; return ;;
    producer) setsid "$TF" producer 9>&- 2>>"$STATE/producer.log" & PRODUCER_PID=$! ;;
    prices) setsid "$TF" prices 9>&- 2>>"$STATE/prices.log" & ;;
    ingestor) setsid "$TF" ingestor --state-dir "$STATE/ingestor" 9>&- 2>>"$STATE/ingestor.log" & ;;
    aggregator) TRADEFLOW_SNAPSHOT_INTERVAL_MS=2000 setsid "$TF" aggregator 9>&- 2>>"$STATE/aggregator.log" & ;;
    dashboard) setsid "$TF" dashboard --listen "127.0.0.1:$DASHBOARD_PORT" 9>&- 2>>"$STATE/dashboard.log" & ;;
  esac
  PIDS+=($!); NAME_OF[$!]=$1
}

start_service broker

export KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT" DATABASE_URL TRADE_LOG_DIR="$STATE/logs" TRADE_LOG_CID="$CLIENTS"
"$TF" topics

# One seed for the producer's trade prices and the price feed: both walk the same path, so trades
# are priced near the marks the rows are valued at (docs/pnl.md).
# Kept in the state directory (like the auth secret): a second run re-publishes the same logs, whose
# trades were priced on this seed's path, so its marks must walk the same one.
[ -s "$STATE/prices-seed" ] || od -An -N4 -tu4 /dev/urandom | tr -d ' ' >"$STATE/prices-seed"
export TRADEFLOW_PRICES_SEED="${TRADEFLOW_PRICES_SEED:-$(cat "$STATE/prices-seed")}"
for service in producer prices ingestor aggregator; do start_service "$service"; done
if [ -z "${TRADEFLOW_AUTH_SECRET:-}" ]; then
  [ -s "$STATE/auth-secret" ] || python3 -c 'import secrets; print(secrets.token_urlsafe(32))' >"$STATE/auth-secret"
  TRADEFLOW_AUTH_SECRET=$(cat "$STATE/auth-secret")
fi
export TRADEFLOW_AUTH_SECRET
start_service dashboard
DASHBOARD_URL="http://127.0.0.1:$DASHBOARD_PORT/"
# The first page: the dashboard answers /readyz (its feeds read; at most 60 s, then say so).
ready_deadline=$((SECONDS + 60))
until curl -sf -o /dev/null "${DASHBOARD_URL}readyz"; do
  [ "$SECONDS" -lt "$ready_deadline" ] || { log "the dashboard is not ready after 60 s: see $STATE/dashboard.log"; break; }
  # One that exits at its start (a port taken, a bad setting) is the restart loop's, below.
  kill -0 "${PIDS[-1]}" 2>/dev/null || { log "the dashboard exited at its start: see $STATE/dashboard.log"; break; }
  sleep 0.2
done
mmss() { printf '%d min %02d s' $(($1 / 60)) $(($1 % 60)); }
READY="first page ready $(mmss "$SECONDS") after the start: tools, Kafka's jars and Postgres $(mmss "$SETUP_SECS"), release build $([ -n "${BUILD_SECS:-}" ] && mmss "$BUILD_SECS" || echo "skipped (TRADEFLOW_BIN)"), the stack $(mmss $((SECONDS - STACK_START)))"
LINKS=""
for c in ${CLIENTS//,/ }; do
  LINKS+="  client $c     ${DASHBOARD_URL}#client=$c&token=$("$TF" token --client "$c")"$'\n'
done

cat >&2 <<INFO

tradeflow is running ($READY)
  dashboard   $DASHBOARD_URL  (open a link below; terminal: $TF tail --client <id> --token <token>)
$LINKS  broker      $KAFKA_BROKERS (Apache Kafka $KAFKA_VERSION, log dir $STATE/broker)
  postgres    $DATABASE_URL
  trade logs  $TRADE_LOG_DIR (clients $CLIENTS)
  ingestor    metrics http://${TRADEFLOW_INGESTOR_METRICS_ADDR:-127.0.0.1:9101}/metrics
  aggregator  metrics http://${TRADEFLOW_AGGREGATOR_METRICS_ADDR:-127.0.0.1:9102}/metrics
  SQL (read-only): psql "${DATABASE_URL%%://*}://tradeflow_reader@${DATABASE_URL#*@}"
  service logs $STATE/*.log
Ctrl-C stops everything; a service or the broker that dies is restarted.
INFO
# One line of holdings P&L from Postgres once rows carry marks (in the background; at most 90 s).
(
  for _ in $(seq 90); do
    sample=$(psql "$DATABASE_URL" -Atc "SELECT format('client %s %s %s: position %s, mark %s, total P&L %s, day P&L %s (day-open mark %s)',
        client_id, account_id, symbol, position, mark_price, total_pnl, coalesce(day_pnl::text, 'null'),
        coalesce(day_open_mark::text, 'null')) FROM holdings WHERE total_pnl IS NOT NULL
        ORDER BY abs(position) DESC, client_id, account_id, symbol LIMIT 1" 2>/dev/null || true)
    if [ -n "$sample" ]; then
      echo "  P&L sample (SQL: SELECT * FROM holdings): $sample" >&2
      echo "  live: the page's positions view, or $TF tail --view positions --client <id> --token <token>" >&2
      break
    fi
    sleep 1
  done
) 9>&- &
SAMPLE_PID=$!
# The services run in their own sessions: a terminal's Ctrl-C reaches only this script, whose trap
# stops them in order. So a service that exits — a crash, kill -9, a SIGTERM from outside (status 0),
# the broker killed — is restarted after a pause, as compose's `restart: unless-stopped` does,
# except a producer that wrote its `--count` (TRADEFLOW_PRODUCER_COUNT); five exits of one service
# within a minute end the run.
declare -A DEATHS   # service → the times (s) of its recent deaths
while :; do
  status=0 done_pid=""
  wait -n -p done_pid "${PIDS[@]}" || status=$?
  name=${NAME_OF[$done_pid]:-?}
  rest=(); for p in "${PIDS[@]}"; do [ "$p" = "$done_pid" ] || rest+=("$p"); done; PIDS=("${rest[@]}")
  [ "$name" = broker ] && KAFKA_PID=""
  # (Without a count the producer only stops when told: its exit 0 is the Ctrl-C, not the end of its lines.)
  if [ "$name" = producer ] && [ "$status" = 0 ] && [ -n "${TRADEFLOW_PRODUCER_COUNT:-}" ]; then
    log "the producer wrote its lines and stopped; everything else keeps running (Ctrl-C stops all)"
    continue
  fi
  logfile="$STATE/$name.log"; [ "$name" = broker ] && logfile="$STATE/broker/kafka.log"
  now=$(date +%s) recent=""
  for t in ${DEATHS[$name]:-} "$now"; do [ $((now - t)) -lt 60 ] && recent+="$t "; done
  DEATHS[$name]=$recent
  if [ "$(wc -w <<<"$recent")" -ge 5 ]; then
    log "$name exited 5 times within a minute (last exit status $status); see $logfile — stopping"
    exit 1
  fi
  pause=$((2 ** ($(wc -w <<<"$recent") - 1)))
  log "$name exited (status $status; see $logfile): restarting it in ${pause}s"
  sleep "$pause"
  start_service "$name"
done
