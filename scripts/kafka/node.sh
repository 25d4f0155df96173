#!/usr/bin/env bash
# One Apache Kafka node in KRaft mode (combined broker + controller), in the foreground: writes its
# server.properties, formats its storage on the first start (kept on later starts: a restart resumes
# on the same log dir), then execs the JVM. Used by scripts/lib.sh and by the integration-test
# harness, so both run the broker with the same settings.
#
#   node.sh --dir DIR --id N --port P --controller-port C --voters 1@127.0.0.1:C1,… --cluster-id ID
#           [--replication R]      (default 1; 3 for a replicated cluster: min.insync.replicas = R-1)
#           [--sasl-ssl-port S --keystore FILE.p12 --keystore-password PW --scram USER=PASSWORD]
#                                  a second listener, SASL_SSL on S: TLS with the PKCS12 keystore, SCRAM-SHA-512
#                                  logins (the user is created when the storage is formatted)
#
# Environment: KAFKA_LIBS (the broker's jars; default ~/.cache/tradeflow/kafka-<version>/libs),
# KAFKA_HEAP_OPTS (default -Xms256m -Xmx512m: the broker shares two cores with everything else),
# KAFKA_JVM_PERFORMANCE_OPTS (the GC and JIT flags, as in Kafka's own kafka-run-class.sh; default
# below), KAFKA_SERVER_PROPS (extra server.properties lines, newline-separated; a key given again
# overrides the one above — java.util.Properties keeps the last),
# JAVA (default java), TRADEFLOW_NODE_OWNER_PID (the node is killed once that process is gone:
# the test harness's, so a test process that exits or dies never leaves a broker behind).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")
KAFKA_LIBS="${KAFKA_LIBS:-${TRADEFLOW_CACHE:-$HOME/.cache/tradeflow}/kafka-$version/libs}"

dir="" id=1 port="" cport="" voters="" cluster_id="" replication=1 sport="" keystore="" kspw="" scram=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir=$2 ;; --id) id=$2 ;; --port) port=$2 ;; --controller-port) cport=$2 ;;
    --voters) voters=$2 ;; --cluster-id) cluster_id=$2 ;; --replication) replication=$2 ;;
    --sasl-ssl-port) sport=$2 ;; --keystore) keystore=$2 ;; --keystore-password) kspw=$2 ;; --scram) scram=$2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "node.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift 2
done
for v in dir port cport voters cluster_id; do
  [ -n "${!v}" ] || { echo "node.sh: --${v//_/-} is required" >&2; exit 2; }
done
[ -f "$KAFKA_LIBS/kafka_2.13-$version.jar" ] || { echo "node.sh: no Kafka jars in $KAFKA_LIBS (scripts/lib.sh ensure_kafka fetches them)" >&2; exit 2; }

min_isr=$(( replication > 1 ? replication - 1 : 1 ))
listeners="PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport"
advertised="PLAINTEXT://127.0.0.1:$port"
protocols="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
secured=""
format_extra=()
if [ -n "$sport" ]; then
  for v in keystore kspw scram; do [ -n "${!v}" ] || { echo "node.sh: --sasl-ssl-port needs --keystore, --keystore-password and --scram" >&2; exit 2; }; done
  listeners="$listeners,SASL_SSL://127.0.0.1:$sport"
  advertised="$advertised,SASL_SSL://127.0.0.1:$sport"
  protocols="$protocols,SASL_SSL:SASL_SSL"
  secured="sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PKCS12
ssl.keystore.location=$keystore
ssl.keystore.password=$kspw
ssl.key.password=$kspw"
  format_extra=(--add-scram "SCRAM-SHA-512=[name=${scram%%=*},password=${scram#*=}]")
fi
mkdir -p "$dir/data"
cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=$id
controller.quorum.voters=$voters
listeners=$listeners
advertised.listeners=$advertised
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=$protocols
$secured
log.dirs=$dir/data
# As docker-compose.yml: topics are created by \`tradeflow topics\`, groups start at once.
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
default.replication.factor=$replication
min.insync.replicas=$min_isr
offsets.topic.replication.factor=$replication
transaction.state.log.replication.factor=$replication
transaction.state.log.min.isr=$min_isr
share.coordinator.state.topic.replication.factor=$replication
share.coordinator.state.topic.min.isr=$min_isr
# Two cores shared with Postgres, the services and the load: fewer threads, a smaller cleaner buffer.
num.network.threads=2
num.io.threads=4
background.threads=4
log.cleaner.dedupe.buffer.size=33554432
${KAFKA_SERVER_PROPS:-}
PROPS

java_bin="${JAVA:-java}"
cp="$KAFKA_LIBS/*"
perf_opts="${KAFKA_JVM_PERFORMANCE_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent}"
jvm=(${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m} $perf_opts -Djava.awt.headless=true
     "-Dlog4j2.configurationFile=$here/log4j2.properties" -cp "$cp")
if [ ! -f "$dir/data/meta.properties" ]; then
  "$java_bin" "${jvm[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" --ignore-formatted "${format_extra[@]}"
fi
echo "node.sh: starting node $id (Apache Kafka $version) on 127.0.0.1:$port"
if [ -n "${TRADEFLOW_NODE_OWNER_PID:-}" ]; then
  # $$ is this shell, which becomes the JVM at the exec below.
  node_pid=$$ owner=$TRADEFLOW_NODE_OWNER_PID
  ( exec </dev/null >/dev/null 2>&1
    while kill -0 "$owner" 2>/dev/null && kill -0 "$node_pid" 2>/dev/null; do sleep 1; done
    kill -KILL "$node_pid" 2>/dev/null ) &
fi
exec "$java_bin" "${jvm[@]}" kafka.Kafka "$dir/server.properties"
