# Shared helpers for tradeflow's scripts: install what is missing, start the local stack.
# Sourced by scripts/test.sh, dev.sh, chaos.sh and the benchmarks.

TRADEFLOW_CACHE="${TRADEFLOW_CACHE:-$HOME/.cache/tradeflow}"
TRADEFLOW_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$TRADEFLOW_ROOT/scripts/kafka/pom.xml")
KAFKA_LIBS="${KAFKA_LIBS:-$TRADEFLOW_CACHE/kafka-$KAFKA_VERSION/libs}"   # fetched there by ensure_kafka
export TRADEFLOW_CACHE KAFKA_LIBS

log() { printf '[tradeflow] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# A loopback port free now, drawn below Linux's ephemeral range (32768–60999), which outgoing
# connections also draw from: a port from bind(0) can be taken by a client before its service binds it.
free_port() {
  python3 -c '
import random, socket
while True:
    p = random.randrange(20000, 32000)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); s.close(); print(p); break
    except OSError:
        s.close()'
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

# Apache Kafka from Maven Central (SPEC §5): the broker's jars, resolved once by scripts/kafka/pom.xml
# into the cache outside the checkout; Java and Maven from Debian's packages when missing.
ensure_build_tools() { # make builds librdkafka; it links the system's OpenSSL (headers: libssl-dev, found by pkg-config); the openssl CLI makes the tests' certificates
  local missing=()
  command -v make >/dev/null || missing+=(make)
  command -v pkg-config >/dev/null || missing+=(pkg-config)
  pkg-config --exists openssl 2>/dev/null || missing+=(libssl-dev)
  command -v openssl >/dev/null || missing+=(openssl)
  [ ${#missing[@]} -eq 0 ] && return
  log "installing ${missing[*]} (Debian packages)"
  apt_install "${missing[@]}"
}

ensure_rust_lints() { # rustfmt and clippy: components of the toolchain, added through rustup when missing
  cargo fmt --version >/dev/null 2>&1 && cargo clippy --version >/dev/null 2>&1 && return
  command -v rustup >/dev/null || die "cargo fmt / cargo clippy missing and no rustup to add them"
  log "adding the rustfmt and clippy components"
  rustup component add rustfmt clippy
}

# The house gates: formatting (rustfmt.toml) and clippy with warnings as errors, every target.
check_house() {
  ensure_rust_lints
  log "checking formatting (cargo fmt --check)"
  cargo fmt --all -- --check || die "the tree is not formatted: run cargo fmt --all"
  log "checking lints (cargo clippy --all-targets -- -D warnings)"
  cargo clippy --workspace --all-targets --locked -- -D warnings || die "clippy found warnings (see above)"
}

ensure_java() {
  command -v java >/dev/null || { log "installing Java (Debian's openjdk-17-jre-headless)"; apt_install openjdk-17-jre-headless; }
}

# ensure_jdk: the JDK's tools the benchmarks use on the broker's JVM — `jcmd` (its threads' CPU) and
# the source launcher's compiler (scripts/kafka/RequestCounts.java); the broker alone needs a JRE.
ensure_jdk() {
  command -v jcmd >/dev/null && command -v javac >/dev/null && return
  log "installing the JDK's tools (Debian's openjdk-17-jdk-headless: jcmd, javac)"
  apt_install openjdk-17-jdk-headless
}

ensure_kafka() {
  ensure_java
  [ -f "$KAFKA_LIBS/.complete" ] && return
  command -v mvn >/dev/null || { log "installing Maven (Debian package)"; apt_install maven; }
  mkdir -p "$TRADEFLOW_CACHE"
  log "fetching Apache Kafka $KAFKA_VERSION's jars into $KAFKA_LIBS (first time only)"
  (
    flock 9
    [ -f "$KAFKA_LIBS/.complete" ] && exit 0
    rm -rf "$KAFKA_LIBS.tmp"
    mvn -q -B -Dstyle.color=never -f "$TRADEFLOW_ROOT/scripts/kafka/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS.tmp" >&2
    rm -rf "$KAFKA_LIBS" && mv "$KAFKA_LIBS.tmp" "$KAFKA_LIBS" && touch "$KAFKA_LIBS/.complete"
  ) 9>"$TRADEFLOW_CACHE/kafka.lock" || die "fetching the Kafka jars failed"
}

kafka_cluster_id() { # a fresh KRaft cluster id: 16 random bytes, base64url without padding, not
  # starting with "-" (the storage tool would take it for an option; Kafka's own Uuid draws again too)
  python3 -c '
import base64, os
while True:
    i = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
    if not i.startswith("-"):
        print(i)
        break'
}

# wait_kafka LOGFILE PID PORT: the node's "Kafka Server started", within KAFKA_START_TIMEOUT (60 s).
wait_kafka() {
  local logfile=$1 pid=$2 port=$3 deadline=$((SECONDS + ${KAFKA_START_TIMEOUT:-60}))
  local starts started
  while :; do
    # One "Kafka Server started" per "node.sh: starting node" (a restart appends to the same log).
    starts=$(grep -c 'node.sh: starting node' "$logfile" 2>/dev/null || true)
    started=$(grep -c 'Kafka Server started' "$logfile" 2>/dev/null || true)
    if [ "${starts:-0}" -gt 0 ] && [ "${started:-0}" -ge "${starts:-0}" ] && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      break
    fi
    if ! kill -0 "$pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
      tail -30 "$logfile" >&2
      die "Apache Kafka did not start on 127.0.0.1:$port (log above: $logfile)"
    fi
    sleep 0.1
  done
}

# kafka_node DIR ID PORT CONTROLLER_PORT VOTERS CLUSTER_ID REPLICATION → one node in the background,
# in its own session (a terminal's Ctrl-C stops the services first; the broker is stopped last),
# logging to DIR/kafka.log. Sets KAFKA_PID.
kafka_node() {
  mkdir -p "$1"
  setsid "$TRADEFLOW_ROOT/scripts/kafka/node.sh" --dir "$1" --id "$2" --port "$3" --controller-port "$4" \
    --voters "$5" --cluster-id "$6" --replication "$7" >>"$1/kafka.log" 2>&1 &
  KAFKA_PID=$!
}

# start_kafka DIR [PORT] → a single KRaft node (broker + controller) logging into DIR; reuses DIR's
# storage when it is already formatted (dev.sh --durable). Sets KAFKA_PID, KAFKA_BROKERS.
start_kafka() {
  local dir=$1 port=${2:-$(free_port)} cport
  cport=$(free_port)
  mkdir -p "$dir"
  # A kept log dir was formatted with the controller port of its first run: reuse the id and port.
  [ -f "$dir/cluster-id" ] || kafka_cluster_id >"$dir/cluster-id"
  [ -f "$dir/controller-port" ] && cport=$(cat "$dir/controller-port") || echo "$cport" >"$dir/controller-port"
  kafka_node "$dir" 1 "$port" "$cport" "1@127.0.0.1:$cport" "$(cat "$dir/cluster-id")" 1
  wait_kafka "$dir/kafka.log" "$KAFKA_PID" "$port"
  KAFKA_BROKERS="127.0.0.1:$port"
  log "broker (Apache Kafka $KAFKA_VERSION) on $KAFKA_BROKERS, pid $KAFKA_PID, log $dir/kafka.log"
}

# start_kafka_cluster N DIR → N KRaft nodes (each broker + controller; replication factor N,
# min.insync.replicas N-1) in DIR/node<i>. Sets KAFKA_PIDS (array), KAFKA_BROKERS (all of them).
start_kafka_cluster() {
  local n=$1 dir=$2 i cid voters="" ports=() cports=()
  cid=$(kafka_cluster_id)
  for i in $(seq 1 "$n"); do
    ports+=("$(free_port)"); cports+=("$(free_port)")
    voters+="${voters:+,}$i@127.0.0.1:${cports[$((i-1))]}"
  done
  KAFKA_PIDS=(); KAFKA_BROKERS=""
  for i in $(seq 1 "$n"); do
    kafka_node "$dir/node$i" "$i" "${ports[$((i-1))]}" "${cports[$((i-1))]}" "$voters" "$cid" "$n"
    KAFKA_PIDS+=("$KAFKA_PID")
    KAFKA_BROKERS+="${KAFKA_BROKERS:+,}127.0.0.1:${ports[$((i-1))]}"
  done
  for i in $(seq 1 "$n"); do
    wait_kafka "$dir/node$i/kafka.log" "${KAFKA_PIDS[$((i-1))]}" "${ports[$((i-1))]}"
  done
  log "Apache Kafka $KAFKA_VERSION cluster of $n nodes: $KAFKA_BROKERS (logs $dir/node*/kafka.log)"
}

stop_kafka() { # PIDS…: SIGTERM (a clean shutdown), SIGKILL after 30 s
  local pid deadline=$((SECONDS + 30))
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "$@"; do
    while kill -0 "$pid" 2>/dev/null; do
      [ "$SECONDS" -lt "$deadline" ] || { kill -KILL "$pid" 2>/dev/null || true; break; }
      sleep 0.1
    done
  done
}

ensure_psql() {
  command -v psql >/dev/null || apt_install postgresql-client
}

pg_ok() { psql "$1" -Atqc 'select 1' >/dev/null 2>&1; }

# Sets DATABASE_URL: the given one (it must answer within 30 s), else a local server on 5432, else a
# throwaway cluster.
ensure_postgres() {
  ensure_psql
  if [ -n "${DATABASE_URL:-}" ]; then
    # A given server is used or refused, never silently replaced by another (a busy server, out of
    # connection slots for a moment, would otherwise get a stranger's tables written elsewhere).
    local deadline=$((SECONDS + 30)) error
    until error=$(psql "$DATABASE_URL" -Atqc 'select 1' 2>&1 >/dev/null); do
      [ "$SECONDS" -lt "$deadline" ] || die "DATABASE_URL is set but Postgres does not answer there: $error"
      sleep 1
    done
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
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=400" start >/dev/null
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

# hop_quantiles LABEL BEFORE AFTER HISTOGRAM → "LABEL  count  p50  p99" of the observations between
# two scrapes of a service's /metrics (files), read off a Prometheus histogram: each quantile is the
# upper bound of the bucket it falls in (an upper estimate).
hop_quantiles() {
  python3 - "$@" <<'PY'
import sys
label, before, after, name = sys.argv[1:5]
def buckets(path):
    out, total = [], 0.0
    try:
        for line in open(path):
            if line.startswith(name + '_bucket{le="'):
                le = line.split('"')[1]
                out.append((float("inf") if le == "+Inf" else float(le), int(float(line.split()[-1]))))
            elif line.startswith(name + "_sum "):
                total = float(line.split()[-1])
    except OSError:
        pass
    return out, total
(b, b_sum), (a, a_sum) = buckets(before), buckets(after)
b = dict(b)
diff = [(le, n - b.get(le, 0)) for le, n in a]
total = diff[-1][1] if diff else 0
def q(p):
    for le, n in diff:
        if total and n >= p * total:
            return "> 5 s" if le == float("inf") else f"≤ {le * 1000:g} ms"
    return "-"
mean = f"{(a_sum - b_sum) / total * 1000:.2f} ms" if total else "-"
print(f"  {label:<46} {total:>9} obs.  mean {mean:>9}  p50 {q(0.5):>10}  p99 {q(0.99):>10}")
PY
}

# cpu_ticks PID… → the processes' CPU time so far (user + system), in clock ticks.
cpu_ticks() {
  local pid total=0 t
  for pid in "$@"; do
    t=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0)
    total=$((total + t))
  done
  echo "$total"
}
