#!/usr/bin/env bash
# The compose check: `docker compose up` executed for real, with the project's own Dockerfile and
# docker-compose.yml (issue 27). Prints each step it checked; exits non-zero on the first that fails;
# removes its containers, networks and volumes (and stops the Docker engine if it started one) on exit.
#
#   scripts/compose-check.sh
#
# What it installs when missing: Debian's docker.io (and starts dockerd when none answers), Compose v2
# built from the Go module proxy (needs Go ≥ 1.24 on PATH), debootstrap. No container registry is
# reachable from the project's machines (SPEC §5): every image the compose file and the Dockerfile name
# that is not present is built locally as a STAND-IN of the same name and tag (tests/compose/standins/;
# a Debian base from debootstrap, then Debian's packages and Apache Kafka's jars from Maven Central).
# Cached under ~/.cache/tradeflow/compose (Compose, the debootstrap base); a second run is fast.
#
# Environment:
#   COMPOSE_FULL_BUILD=1   build the tradeflow image with the Dockerfile's full build (release compile in
#                          the container, ~10+ minutes); default: the `prebuilt` target around the binary
#                          the test run built (COMPOSE_BINARY, default target/debug/tradeflow, built when missing)
#   COMPOSE_KEEP=1         leave the last stack running (for a look around); `docker compose -p
#                          tradeflow-check down -v` removes it
#   COMPOSE_CHECK_PROJECT  the compose project and image tag (default tradeflow-check and check): two
#                          checks can share an engine

set -Eeuo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

COMPOSE_VERSION=v2.40.3
CACHE="$TRADEFLOW_CACHE/compose"
STANDINS=tests/compose/standins
export COMPOSE_PROJECT_NAME=${COMPOSE_CHECK_PROJECT:-tradeflow-check} TRADEFLOW_IMAGE_TAG=${COMPOSE_CHECK_PROJECT:-check}
export DOCKER_CONFIG="$CACHE/docker-config" DOCKER_BUILDKIT=0 COMPOSE_BAKE=false
# The override moves Grafana behind a profile: it cannot run here (tests/compose/check.override.yml).
export COMPOSE_FILE=docker-compose.yml:tests/compose/check.override.yml
IMAGE="tradeflow:$TRADEFLOW_IMAGE_TAG"
STARTED=$SECONDS
mkdir -p "$CACHE"

LAST_STEP=""
ok() { printf '[compose-check] ok: %s\n' "$*" >&2; LAST_STEP="ok: $*"; }
step() { printf '[compose-check] %s\n' "$*" >&2; LAST_STEP="$*"; }
dc() { docker compose "$@"; }

# wait_until DESCRIPTION SECONDS COMMAND… → polls COMMAND every second until it succeeds; dies at the deadline.
wait_until() {
  local what=$1 deadline=$((SECONDS + $2)); shift 2
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || { "$@" >&2 || true; die "timed out waiting for: $what"; }
    sleep 1
  done
}

# retry TIMES COMMAND… → runs COMMAND until it succeeds, at most TIMES times, 2 s apart; its last status.
# For the one-off docker and compose calls between the polls (an exec or run can fail while the engine
# is busy under CI's load); each failed attempt is printed.
retry() {
  local times=$1 attempt=1; shift
  until "$@"; do
    local rc=$?
    [ "$attempt" -lt "$times" ] || return "$rc"
    step "attempt $attempt of $times failed (exit $rc): $*; retrying"
    attempt=$((attempt + 1)); sleep 2
  done
}

# --- the engine and Compose ----------------------------------------------------------------------

DOCKERD_PID=""
ensure_docker() {
  command -v dockerd >/dev/null || { log "installing docker.io (Debian package)"; apt_install docker.io; }
  command -v debootstrap >/dev/null || { log "installing debootstrap (Debian package)"; apt_install debootstrap; }
  if ! docker info >/dev/null 2>&1; then
    step "starting dockerd (log: $CACHE/dockerd.log)"
    setsid dockerd >"$CACHE/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    wait_until "dockerd to answer" 60 docker info
  fi
  ok "Docker engine $(docker version --format '{{.Server.Version}}')"
}

ensure_compose() {
  local bin="$CACHE/docker-compose-$COMPOSE_VERSION"
  if [ ! -x "$bin" ]; then
    command -v go >/dev/null || die "Compose is built from the Go module proxy: Go ≥ 1.24 is needed on PATH"
    step "building Compose $COMPOSE_VERSION from the Go module proxy (first time only)"
    local dir build
    # Built inside its own module directory: `go install …@version` refuses a module with `exclude` directives.
    dir=$(cd "$CACHE" && GOFLAGS=-mod=mod go mod download -json "github.com/docker/compose/v2@$COMPOSE_VERSION" |
      python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
    build=$(mktemp -d "$CACHE/compose-src.XXXXXX")
    cp -r "$dir/." "$build" && chmod -R u+w "$build"
    (cd "$build" && go build -trimpath -o "$bin.tmp" \
      -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$COMPOSE_VERSION" ./cmd)
    mv "$bin.tmp" "$bin" && rm -rf "$build"
  fi
  mkdir -p "$DOCKER_CONFIG/cli-plugins"
  ln -sf "$bin" "$DOCKER_CONFIG/cli-plugins/docker-compose"
  ok "$(docker compose version)"
}

# --- images: the project's, and stand-ins for those no registry can give ---------------------------

# is_standin IMAGE → true when IMAGE is absent or one of ours (a real image, pulled or loaded, is kept).
needs_standin() {
  local label
  label=$(docker image inspect --format '{{index .Config.Labels "org.tradeflow.standin"}}' "$1" 2>/dev/null) || return 0
  [ -n "$label" ]
}

# The base of every stand-in: Debian bookworm from debootstrap (minbase), configured as the official
# image is (debuerreotype): no services started by package scripts, apt lists cleaned, no docs.
ensure_debian_base() {
  needs_standin debian:bookworm-slim || { ok "debian:bookworm-slim: the real image"; return; }
  # Kept once imported: a new base would invalidate every stand-in's cached layers.
  docker image inspect debian:bookworm-slim >/dev/null 2>&1 && { ok "debian:bookworm-slim: stand-in (debootstrap)"; return; }

  local tarball="$CACHE/debian-bookworm-minbase.tar"
  if [ ! -f "$tarball" ]; then
    step "debootstrap: Debian bookworm minbase (first time only)"
    local root
    root=$(mktemp -d "$CACHE/rootfs.XXXXXX")
    debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >"$CACHE/debootstrap.log" 2>&1 ||
      die "debootstrap failed (log: $CACHE/debootstrap.log)"
    cat >"$root/etc/apt/sources.list.d/debian.sources" <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    rm -f "$root/etc/apt/sources.list"
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d" && chmod 0755 "$root/usr/sbin/policy-rc.d"
    printf 'APT::Install-Recommends "false";\nAcquire::Languages "none";\n' >"$root/etc/apt/apt.conf.d/docker-minimal"
    rm -rf "$root/var/lib/apt/lists/"* "$root/var/cache/apt/"*.bin "$root/var/cache/apt/archives/"*.deb \
      "$root/usr/share/doc/"* "$root/usr/share/man/"*
    tar --numeric-owner -C "$root" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$root"
  fi
  docker import --change 'CMD ["bash"]' \
    --change 'LABEL org.tradeflow.standin="debian:bookworm-slim (debootstrap minbase, scripts/compose-check.sh)"' \
    "$tarball" debian:bookworm-slim >/dev/null
  ok "debian:bookworm-slim: stand-in from debootstrap"
}

# build_standin IMAGE CONTEXT_DIR → docker build (the classic builder's layer cache makes a rebuild quick).
build_standin() {
  local image=$1 context=$2
  needs_standin "$image" || { ok "$image: the real image"; return; }
  docker build -q -t "$image" "$context" >/dev/null 2>"$RUN_DIR/build.err" || { cat "$RUN_DIR/build.err" >&2; die "building the stand-in $image failed"; }
  ok "$image: stand-in ($(docker image inspect --format '{{index .Config.Labels "org.tradeflow.standin"}}' "$image"))"
}

ensure_kafka_standin() {
  local image tools ctx
  image=$(sed -n 's/^ *image: \(apache\/kafka:.*\)$/\1/p' docker-compose.yml)
  needs_standin "$image" || { ok "$image: the real image"; return; }
  ensure_kafka # the broker's jars (Maven Central), as the native runs use
  tools="$CACHE/kafka-tools-$KAFKA_VERSION"
  if [ ! -f "$tools/.complete" ]; then
    command -v mvn >/dev/null || apt_install maven
    rm -rf "$tools"
    mvn -q -B -Dstyle.color=never -f "$STANDINS/kafka/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$tools" >&2 || die "fetching kafka-tools' jars failed"
    touch "$tools/.complete"
  fi
  ctx="$RUN_DIR/kafka-context"
  mkdir -p "$ctx/libs"
  cp "$STANDINS/kafka/"{Dockerfile,run,tool} scripts/kafka/log4j2.properties "$ctx/"
  cp "$KAFKA_LIBS/"*.jar "$ctx/libs/" && cp -n "$tools/"*.jar "$ctx/libs/"
  build_standin "$image" "$ctx"
}

ensure_rust_standin() {
  local image=rust:1.95-slim-bookworm toolchain ctx
  needs_standin "$image" || { ok "$image: the real image"; return; }
  toolchain=$(rustc +1.95.0 --print sysroot) || die "the rust stand-in carries the host's Rust 1.95.0 toolchain: rustup toolchain install 1.95.0"
  ctx="$RUN_DIR/rust-context"
  mkdir -p "$ctx"
  cp "$STANDINS/rust/Dockerfile" "$ctx/"
  mkdir -p "$ctx/local-ca"
  cp /usr/local/share/ca-certificates/*.crt "$ctx/local-ca/" 2>/dev/null || true

  cp -a "$toolchain/." "$ctx/toolchain" && rm -rf "$ctx/toolchain/share/doc"
  build_standin "$image" "$ctx"
}

ensure_tradeflow_image() {
  local start=$SECONDS
  if [ "${COMPOSE_FULL_BUILD:-0}" = 1 ]; then
    ensure_rust_standin
    step "building $IMAGE with the Dockerfile's full build (release compile in the container)"
    docker build -t "$IMAGE" . >"$RUN_DIR/docker-build.log" 2>&1 || { tail -40 "$RUN_DIR/docker-build.log" >&2; die "docker build failed"; }
    ok "$IMAGE: full build in $((SECONDS - start)) s"
  else
    local binary=${COMPOSE_BINARY:-target/debug/tradeflow}
    [ -x "$binary" ] || { step "building $binary"; ensure_build_tools; cargo build --locked --bin tradeflow; }
    docker build -q --target prebuilt --build-arg "TRADEFLOW_BINARY=$binary" -t "$IMAGE" . >/dev/null 2>"$RUN_DIR/build.err" ||
      { cat "$RUN_DIR/build.err" >&2; die "docker build --target prebuilt failed"; }
    ok "$IMAGE: the Dockerfile's prebuilt target around $binary ($((SECONDS - start)) s)"
  fi
}

# --- the run -------------------------------------------------------------------------------------

# The command that failed, kept for the last line: CI shows only the end of the output, and the
# containers' logs printed on failure would push it out of sight.
FAILED_AT=""
on_error() { [ -n "$FAILED_AT" ] || FAILED_AT="line $1: $2 (exit $3)"; }
die() { FAILED_AT="error: $*"; log "error: $*"; exit 1; }

cleanup() {
  local rc=$?
  if [ "${COMPOSE_KEEP:-0}" != 1 ] && docker info >/dev/null 2>&1; then
    [ "$rc" = 0 ] || { dc ps -a >&2 || true; dc logs --no-color --tail 30 >&2 || true; }
    dc down -v --remove-orphans >/dev/null 2>&1 || true
    docker rm -f "$COMPOSE_PROJECT_NAME-subscriber" >/dev/null 2>&1 || true
  fi
  if [ -n "$DOCKERD_PID" ]; then
    kill -TERM "$DOCKERD_PID" 2>/dev/null || true
    wait "$DOCKERD_PID" 2>/dev/null || true
  fi
  rm -rf "$RUN_DIR"
  [ "$rc" = 0 ] && log "compose check passed in $((SECONDS - STARTED)) s" ||
    log "compose check FAILED (exit $rc) after $((SECONDS - STARTED)) s${FAILED_AT:+ at $FAILED_AT}; the last step: ${LAST_STEP:-none}"
}

# The host ports the compose file publishes: its defaults when free (CI), else free ones.
choose_ports() {
  local var default
  for var in DASHBOARD_HOST_PORT:8080 POSTGRES_HOST_PORT:55432 KAFKA_HOST_PORT:29092 PROMETHEUS_HOST_PORT:9090; do
    default=${var#*:}; var=${var%%:*}
    if [ -z "${!var:-}" ]; then
      if (exec 3<>"/dev/tcp/127.0.0.1/$default") 2>/dev/null; then
        export "$var"="$(free_port)"; step "port $default is taken: $var=${!var}"
      else
        export "$var"="$default"
      fi
    fi
  done
}

reader_sql() { # SQL → its result, as the read-only role on the published port
  PGPASSWORD="$READER_PASSWORD" psql -h 127.0.0.1 -p "$POSTGRES_HOST_PORT" -U tradeflow_reader -d tradeflow -Atqc "$1"
}
traded() { reader_sql 'select coalesce(sum(trade_count), 0) from summary_current'; }
traded_more_than() { [ "$(traded 2>/dev/null || echo 0)" -gt "$1" ]; }
one_shot_done() { # SERVICE → exited 0
  [ "$(docker inspect --format '{{.State.Status}} {{.State.ExitCode}}' "$(dc ps -a -q "$1")" 2>/dev/null)" = "exited 0" ]
}

# verify_oracle WHAT: stop the producer, wait until `tradeflow verify` (in a container, on the logs
# volume) finds Postgres equal to the oracle of the logs, start the producer again.
verify_oracle() {
  retry 3 dc stop producer >/dev/null 2>&1
  wait_until "the rows to equal the oracle of the logs ($1)" 180 \
    dc run --rm --no-deps -T -v "${COMPOSE_PROJECT_NAME}_trade-logs:/logs:ro" aggregator verify --logs /logs
  ok "$1: rows equal the oracle of the logs volume ($(dc run --rm --no-deps -T -v "${COMPOSE_PROJECT_NAME}_trade-logs:/logs:ro" aggregator verify --logs /logs 2>/dev/null | tail -1))"
  retry 3 dc start producer >/dev/null 2>&1
}

group_members_with_partitions() { # → how many aggregator instances own partitions of `trades`
  dc exec -T kafka /opt/kafka/bin/kafka-consumer-groups.sh --bootstrap-server localhost:9092 \
    --describe --group tradeflow-aggregator --members 2>/dev/null | awk '$1 == "tradeflow-aggregator" && $NF > 0' | wc -l
}
three_members() { [ "$(group_members_with_partitions)" = 3 ]; }
summary_table_exists() { # → t or f; fails while the database does not answer
  dc exec -T postgres psql -U tradeflow -d tradeflow -Atqc "select to_regclass('summary_current') is not null" 2>/dev/null | grep -x '[tf]'
}


# --- monitoring: the alert rules, Prometheus scraping the run, the Grafana dashboard's queries ------

PROMETHEUS_IMAGE=""
check_alert_rules() {
  PROMETHEUS_IMAGE=$(sed -n 's/^ *image: \(prom\/prometheus:.*\)$/\1/p' docker-compose.yml)
  build_standin "$PROMETHEUS_IMAGE" "$STANDINS/prometheus"
  local promtool=(docker run --rm --entrypoint /bin/promtool -v "$PWD/deploy/prometheus:/etc/prometheus:ro" -w /etc/prometheus "$PROMETHEUS_IMAGE")
  "${promtool[@]}" check config prometheus.yml >/dev/null || die "promtool check config deploy/prometheus/prometheus.yml failed"
  "${promtool[@]}" test rules alerts.test.yml >&2 || die "promtool test rules deploy/prometheus/alerts.test.yml failed"
  ok "alert rules: promtool check config and promtool test rules pass ($(grep -c '^      - alert:' deploy/prometheus/alerts.yml) alerts)"
  python3 - deploy/grafana <<'PY' || die "the Grafana provisioning files do not agree"
import json, re, sys
root = sys.argv[1]
ds = open(f"{root}/provisioning/datasources/prometheus.yml").read()
assert "url: http://prometheus:9090" in ds, "the datasource points at the compose Prometheus"
path = re.search(r"path:\s*(\S+)", open(f"{root}/provisioning/dashboards/tradeflow.yml").read()).group(1)
compose = open("docker-compose.yml").read()
assert f"./deploy/grafana/dashboards:{path}" in compose, f"the compose file mounts the dashboards at {path}"
assert "./deploy/grafana/provisioning:/etc/grafana/provisioning" in compose
json.load(open(f"{root}/dashboards/tradeflow.json"))
PY
  ok "Grafana provisioning: datasource, dashboard provider and mounts agree"
}

prom() { curl -fsS "http://127.0.0.1:$PROMETHEUS_HOST_PORT$1"; }
targets_up() { # N → N active targets, every one up
  prom /api/v1/targets | python3 -c 'import json, sys
t = json.load(sys.stdin)["data"]["activeTargets"]
sys.exit(0 if len(t) == int(sys.argv[1]) and all(x["health"] == "up" for x in t) else 1)' "$1"
}
has_series() { [ "$(prom "/api/v1/query?query=$1" | python3 -c 'import json, sys; print(len(json.load(sys.stdin)["data"]["result"]))')" -gt 0 ]; }
alert_firing() { prom /api/v1/alerts | python3 -c 'import json, sys
sys.exit(0 if any(a["labels"]["alertname"] == sys.argv[1] and a["state"] == "firing" for a in json.load(sys.stdin)["data"]["alerts"]) else 1)' "$1"; }
panels_answer() { python3 scripts/compose-panels.py "http://127.0.0.1:$PROMETHEUS_HOST_PORT" deploy/grafana/dashboards/tradeflow.json deploy/grafana/provisioning/datasources/prometheus.yml "$@"; }

# bad_line → appends a line that is not a trade to a log file of client 9 on the logs volume (the
# ingestor dead-letters it; the oracle skips it).
bad_line() {
  retry 3 docker run --rm -v "${COMPOSE_PROJECT_NAME}_trade-logs:/logs" debian:bookworm-slim \
    sh -c 'printf "not a trade line\n" >>"/logs/tradeLog_client9.$(date -u +%Y.%m.%d).log"'
}

check_monitoring() {
  local token
  wait_until "Prometheus to scrape ingestor, 3 aggregators, dashboard and itself" 120 targets_up 6
  ok "Prometheus on 127.0.0.1:$PROMETHEUS_HOST_PORT scrapes 6 targets, all up (ingestor, 3 aggregators by DNS, dashboard, itself)"
  bad_line
  wait_until "the dead letter in Prometheus" 60 has_series 'tradeflow_ingestor_lines_dead_lettered_total'
  bad_line
  wait_until "the TradeflowDeadLetters alert to fire" 90 alert_firing TradeflowDeadLetters
  ok "two bad lines dead-lettered: tradeflow_ingestor_lines_dead_lettered_total counts them, TradeflowDeadLetters fires"
  # A websocket subscriber for the subscribers and fan-out panels.
  token=$(retry 3 dc exec -T dashboard tradeflow token --client 1)
  docker rm -f "$COMPOSE_PROJECT_NAME-subscriber" >/dev/null 2>&1 || true
  retry 3 docker run -d --name "$COMPOSE_PROJECT_NAME-subscriber" --network host "$IMAGE" tail --client 1 \
    --url "ws://127.0.0.1:$DASHBOARD_HOST_PORT/ws" --token "$token" >/dev/null
  wait_until "every Grafana panel's query to answer" 120 panels_answer --quiet
  panels_answer | sed 's/^/[compose-check] ok: /' >&2 || step "(a panel's query went quiet again after answering: rates need two scrapes)"
  docker rm -f "$COMPOSE_PROJECT_NAME-subscriber" >/dev/null
}

main() {
  RUN_DIR=$(mktemp -d /tmp/tradeflow-compose-check.XXXXXX)
  trap cleanup EXIT
  trap 'on_error "$LINENO" "$BASH_COMMAND" "$?"' ERR
  ensure_psql
  ensure_docker
  ensure_compose
  ensure_debian_base
  ensure_kafka_standin
  build_standin "$(sed -n 's/^ *image: \(postgres:.*\)$/\1/p' docker-compose.yml)" "$STANDINS/postgres"
  ensure_tradeflow_image
  check_alert_rules
  choose_ports

  dc config -q && ok "docker compose config: the compose file is valid"
  dc down -v --remove-orphans >/dev/null 2>&1 || true
  step "docker compose up -d (from clean)"
  dc up -d --quiet-pull 2>&1 | tail -3 >&2
  wait_until "init to complete" 180 one_shot_done init
  ok "secrets and init completed (topics, migrations, the read-only role)"
  READER_PASSWORD=$(dc exec -T dashboard cat /secrets/reader-password)
  wait_until "rows in Postgres" 120 traded_more_than 0
  ok "rows reach Postgres on 127.0.0.1:$POSTGRES_HOST_PORT as tradeflow_reader ($(traded) trades so far)"

  local page token frame
  page=$(curl -fsS "http://127.0.0.1:$DASHBOARD_HOST_PORT/") || die "the dashboard does not serve its page"
  grep -qi '<html' <<<"$page" || die "the dashboard's page is not HTML"
  ok "the dashboard serves its page on 127.0.0.1:$DASHBOARD_HOST_PORT"
  token=$(retry 3 dc exec -T dashboard tradeflow token --client 1) || die "docker compose exec dashboard tradeflow token --client 1 failed"
  frame=$(docker run --rm --network host "$IMAGE" tail --client 1 --json --frames 2 \
    --url "ws://127.0.0.1:$DASHBOARD_HOST_PORT/ws" --token "$token") || die "no websocket frame with the token"
  grep -q '"snapshot"' <<<"$frame" || die "no snapshot frame after the hello: $frame"
  ok "a websocket snapshot for client 1 with a token from \`tradeflow token\`"

  step "docker compose up -d --scale aggregator=3"
  dc up -d --scale aggregator=3 2>&1 | tail -1 >&2
  wait_until "three aggregators owning partitions" 120 three_members
  ok "the group rebalanced: 3 aggregator instances own partitions of trades"
  verify_oracle "after --scale aggregator=3"
  check_monitoring


  local victim ids before
  # All of the output first, then its first line: `| head -1` closed the pipe after one line, and
  # `docker compose ps` writing the next got EPIPE and exited 255 (pipefail: the check failed,
  # now and then — whenever the three ids came in separate writes).
  ids=$(retry 3 dc ps -q aggregator)
  victim=${ids%%$'\n'*}
  [ -n "$victim" ] || die "docker compose ps -q aggregator named no container"
  before=$(traded)
  docker kill --signal KILL "$victim" >/dev/null
  wait_until "trades to go on after the kill" 60 traded_more_than "$before"
  retry 3 dc restart aggregator >/dev/null 2>&1
  [ "$(dc ps -q --status running aggregator | wc -l)" = 3 ] || die "docker compose restart aggregator did not bring back 3 instances"
  ok "killed one aggregator (SIGKILL), trades went on, docker compose restart aggregator: 3 running again"
  verify_oracle "after the kill and restart"

  before=$(traded)
  dc down >/dev/null 2>&1
  ok "docker compose down (volumes kept)"
  dc up -d postgres >/dev/null 2>&1
  wait_until "Postgres back" 60 traded
  [ "$(traded)" -ge "$before" ] || die "rows lost across down/up: $(traded) trades < $before"
  ok "after down and up: Postgres still holds the $before trades"
  dc up -d >/dev/null 2>&1
  wait_until "init to complete again" 180 one_shot_done init
  wait_until "new trades after up" 120 traded_more_than "$before"
  verify_oracle "after down and up"

  dc down -v >/dev/null 2>&1
  [ -z "$(docker volume ls -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME")" ] ||
    die "docker compose down -v left volumes behind"
  dc up -d postgres >/dev/null 2>&1
  READER_PASSWORD=""
  # pg_isready answers for the image's private first-start server too (as the official image's
  # does): poll until the database answers the query itself.
  wait_until "Postgres after down -v" 60 summary_table_exists
  [ "$(summary_table_exists)" = f ] || die "after down -v the database still has its tables"
  ok "docker compose down -v cleared it (no volumes left; a fresh database after up)"
  dc down -v >/dev/null 2>&1
}

main "$@"
