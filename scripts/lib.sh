# Shared helpers for tradeflow's scripts: install what is missing, start the local stack.
# Sourced by scripts/test.sh and scripts/dev.sh.

TRADEFLOW_CACHE="${TRADEFLOW_CACHE:-$HOME/.cache/tradeflow}"
TANSU_VERSION=0.6.0
TANSU_ROOT="$TRADEFLOW_CACHE/tansu-$TANSU_VERSION"

log() { printf '[tradeflow] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_port() { # host port seconds
  local deadline=$((SECONDS + ${3:-30}))
  until (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

apt_install() { # packages…
  if [ ! -f "$TRADEFLOW_CACHE/.apt-updated" ]; then
    mkdir -p "$TRADEFLOW_CACHE"
    apt-get update -qq >&2 && touch "$TRADEFLOW_CACHE/.apt-updated"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

# Debian's Chromium and ChromeDriver for the browser test (no browser download).
ensure_chromium() {
  command -v chromium >/dev/null && command -v chromedriver >/dev/null && return
  log "installing chromium and chromium-driver (Debian packages)"
  apt_install chromium chromium-driver
}

# tansu 0.6.0 (SPEC §5), built once into the cache outside the checkout; ~10 minutes the first time.
ensure_tansu() {
  if [ -n "${TANSU_BIN:-}" ] && [ -x "$TANSU_BIN" ]; then return; fi
  TANSU_BIN="$TANSU_ROOT/bin/tansu"
  export TANSU_BIN
  [ -x "$TANSU_BIN" ] && return
  mkdir -p "$TRADEFLOW_CACHE"
  log "installing tansu $TANSU_VERSION into $TANSU_ROOT (first time only, ~10 minutes)"
  (
    flock 9
    [ -x "$TANSU_BIN" ] && exit 0
    CARGO_TARGET_DIR="$TRADEFLOW_CACHE/tansu-build" cargo install tansu --version "$TANSU_VERSION" \
      --locked --features dynostore,libsql --root "$TANSU_ROOT" >&2
  ) 9>"$TRADEFLOW_CACHE/tansu.lock" || die "tansu install failed"
  rm -rf "$TRADEFLOW_CACHE/tansu-build"
}

# start_tansu PORT STORAGE_URL WORKDIR LOGFILE → sets TANSU_PID
start_tansu() {
  local port=$1 storage=$2 workdir=$3 logfile=$4
  mkdir -p "$workdir"
  # Its own session: a terminal's Ctrl-C stops the services first; the broker is stopped last.
  ( cd "$workdir" && exec setsid "$TANSU_BIN" broker \
      --listener-url "tcp://127.0.0.1:$port" \
      --advertised-listener-url "tcp://127.0.0.1:$port" \
      --storage-engine "$storage" ) >"$logfile" 2>&1 &
  TANSU_PID=$!
  wait_port 127.0.0.1 "$port" 30 || { tail -20 "$logfile" >&2; die "tansu did not start on port $port"; }
  log "broker (tansu, $storage) on 127.0.0.1:$port, pid $TANSU_PID, log $logfile"
}

ensure_psql() {
  command -v psql >/dev/null || apt_install postgresql-client
}

pg_ok() { psql "$1" -Atqc 'select 1' >/dev/null 2>&1; }

# Sets DATABASE_URL: the given one if reachable, else the local server, else a throwaway cluster.
ensure_postgres() {
  ensure_psql
  if [ -n "${DATABASE_URL:-}" ] && pg_ok "$DATABASE_URL"; then
    log "Postgres: DATABASE_URL"; export DATABASE_URL; return
  fi
  local local_url="postgres://postgres@127.0.0.1:5432/postgres"
  if pg_ok "$local_url"; then
    DATABASE_URL="$local_url"; export DATABASE_URL; log "Postgres: local server 127.0.0.1:5432"; return
  fi
  start_throwaway_postgres
}

# The server binaries (initdb, pg_ctl): tests that restart Postgres run a cluster of their own.
ensure_pg_server_binaries() {
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || apt_install postgresql
}

start_throwaway_postgres() {
  local bindir
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
    apt_install postgresql
    bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  fi
  local port dir
  port=$(free_port)
  dir=$(mktemp -d /tmp/tradeflow-pg.XXXXXX)
  local as=()
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd -r -m postgres
    chown postgres "$dir"; as=(runuser -u postgres --)
  fi
  "${as[@]}" "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust >/dev/null
  "${as[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1" start >/dev/null
  THROWAWAY_PG="$dir"; PG_BINDIR="$bindir"; PG_AS=("${as[@]}")
  DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"; export DATABASE_URL
  log "Postgres: throwaway cluster in $dir on port $port"
}

stop_throwaway_postgres() {
  if [ -n "${THROWAWAY_PG:-}" ]; then
    "${PG_AS[@]}" "$PG_BINDIR/pg_ctl" -D "$THROWAWAY_PG/data" -m fast stop >/dev/null 2>&1 || true
    rm -rf "$THROWAWAY_PG"
  fi
}
