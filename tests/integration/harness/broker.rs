//! The broker: Apache Kafka (SPEC §5) — the shared node from `TRADEFLOW_TEST_BROKERS`, or nodes of
//! the test's own, started with `scripts/kafka/node.sh` (the same settings as the scripts).

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tradeflow_core::kafka::{KafkaArgs, create_topics};
use tradeflow_core::topics::{PartitionArgs, Topics};

/// A loopback port free now, for a service the test starts next. Drawn below Linux's ephemeral
/// range (32768–60999): a port the kernel hands out for `bind(0)` is also handed to outgoing
/// connections, and one of the suite's hundreds of client connections took such a port between
/// this check and a service's bind (CI: "cannot serve metrics: Address already in use").
pub fn free_port() -> u16 {
    loop {
        let port = 20_000 + (uuid::Uuid::new_v4().as_u128() % 12_000) as u16;
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
}

/// How long a node may take to start (the JVM and KRaft share two cores with the tests).
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// What `scripts/kafka/node.sh` prints before it starts the JVM.
const NODE_STARTING: &str = "node.sh: starting node";

/// One KRaft node (broker + controller) of a [`KafkaCluster`].
struct Node {
    id: usize,
    port: u16,
    controller_port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn log(&self) -> PathBuf {
        self.dir.join("kafka.log")
    }
}

/// Apache Kafka nodes of the test's own (log dirs under a temp dir), killed on drop. One node for
/// a broker that a test restarts; three for replication (factor 3, `min.insync.replicas` 2).
pub struct KafkaCluster {
    root: PathBuf,
    cluster_id: String,
    voters: String,
    nodes: Vec<Node>,
    /// More node.sh arguments for every node (a secured listener).
    extra: Vec<String>,
}

impl KafkaCluster {
    /// Starts `n` nodes and waits until every one has started.
    pub fn start(n: usize) -> Self {
        Self::start_with(n, Vec::new())
    }

    /// Starts `n` nodes with more node.sh arguments each.
    pub fn start_with(n: usize, extra: Vec<String>) -> Self {
        let root = super::temp_dir();
        let nodes: Vec<Node> = (1..=n)
            .map(|id| Node {
                id,
                port: free_port(),
                controller_port: free_port(),
                dir: root.join(format!("node{id}")),
                child: None,
            })
            .collect();
        let voters =
            nodes.iter().map(|n| format!("{}@127.0.0.1:{}", n.id, n.controller_port)).collect::<Vec<_>>().join(",");
        let cluster_id = cluster_id();
        let mut cluster = Self { root, cluster_id, voters, nodes, extra };
        for i in 0..n {
            cluster.spawn(i);
        }
        for i in 0..n {
            cluster.wait_started(i);
        }
        cluster
    }

    /// Bootstrap servers: every node.
    pub fn brokers(&self) -> String {
        self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect::<Vec<_>>().join(",")
    }

    pub fn kafka(&self) -> KafkaArgs {
        KafkaArgs::new(self.brokers())
    }

    /// The node with this broker id (0-based index).
    pub fn node_by_id(&self, id: i32) -> Option<usize> {
        self.nodes.iter().position(|n| n.id as i32 == id)
    }

    fn spawn(&mut self, i: usize) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka/node.sh");
        let replication = self.nodes.len().to_string();
        let node = &mut self.nodes[i];
        std::fs::create_dir_all(&node.dir).expect("node dir");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(node.log()).expect("kafka log");
        let child = Command::new(&script)
            .args(["--dir", &node.dir.display().to_string()])
            .args(["--id", &node.id.to_string(), "--port", &node.port.to_string()])
            .args(["--controller-port", &node.controller_port.to_string(), "--voters", &self.voters])
            .args(["--cluster-id", &self.cluster_id, "--replication", &replication])
            .args(&self.extra)
            // Killed once this test process is gone, however it ends (the shared broker below is
            // never dropped; a panic or a kill skips every drop).
            .env("TRADEFLOW_NODE_OWNER_PID", std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", script.display()));
        node.child = Some(child);
    }

    /// Waits for the node's "Kafka Server started" — one per start: a restart appends to the log,
    /// after node.sh's own "starting" line.
    fn wait_started(&mut self, i: usize) {
        let deadline = Instant::now() + START_TIMEOUT;
        let node = &mut self.nodes[i];
        let log = node.log();
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let (starts, started) = (text.matches(NODE_STARTING).count(), text.matches("Kafka Server started").count());
            if starts > 0 && started >= starts {
                return;
            }
            let exited = node.child.as_mut().is_none_or(|c| !matches!(c.try_wait(), Ok(None)));
            if exited || Instant::now() >= deadline {
                let tail: Vec<&str> = text.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect();
                panic!(
                    "Kafka node {} did not start (exited: {exited}); log {}:\n{}",
                    node.id,
                    log.display(),
                    tail.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL of node `i`: no clean shutdown, its log dir stays.
    pub fn kill9(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP of node `i`: the JVM hangs — its connections stay open and nothing answers — until
    /// [`Self::resume`] (a drop still kills it).
    pub fn pause(&mut self, i: usize) {
        self.signal(i, "-STOP");
    }

    /// SIGCONT of a node [`Self::pause`]d.
    pub fn resume(&mut self, i: usize) {
        self.signal(i, "-CONT");
    }

    fn signal(&self, i: usize, signal: &str) {
        let pid = self.nodes[i].child.as_ref().map(|c| c.id()).expect("node running");
        // node.sh execs the JVM: the child's pid is the broker's.
        let status = Command::new("kill").args([signal, &pid.to_string()]).status().expect("run kill");
        assert!(status.success(), "kill {signal} {pid} failed");
    }

    /// Starts node `i` again on its log dir and waits until it has started.
    pub fn restart(&mut self, i: usize) {
        self.kill9(i);
        self.spawn(i);
        self.wait_started(i);
    }
}

impl Drop for KafkaCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill9(i);
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

/// A fresh KRaft cluster id: 16 random bytes, base64url without padding — never starting with `-`,
/// which the storage tool's argument parser would take for an option (Kafka's `Uuid.randomUuid`
/// draws again for the same reason).
fn cluster_id() -> String {
    loop {
        let id = base64_url(uuid::Uuid::new_v4().as_bytes());
        if !id.starts_with('-') {
            return id;
        }
    }
}

/// 16 bytes, base64url without padding.
fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * k)) & 63) as usize] as char);
        }
    }
    out
}

/// The broker tests share (topics keep them apart).
pub struct Broker;

static SHARED: OnceLock<String> = OnceLock::new();

impl Broker {
    /// Bootstrap servers of the shared broker.
    pub fn shared() -> String {
        SHARED
            .get_or_init(|| match std::env::var("TRADEFLOW_TEST_BROKERS") {
                Ok(b) if !b.is_empty() => b,
                _ => {
                    // No broker given: start one for this test process; it runs until the
                    // process exits (node.sh's owner watch kills it then).
                    let cluster = KafkaCluster::start(1);
                    let brokers = cluster.brokers();
                    std::mem::forget(cluster);
                    brokers
                }
            })
            .clone()
    }

    pub fn kafka() -> KafkaArgs {
        KafkaArgs::new(Self::shared())
    }
}

/// A test's own set of topics on a broker.
#[derive(Clone)]
pub struct TestTopics {
    pub prefix: String,
    pub topics: Topics,
    pub kafka: KafkaArgs,
    pub partitions: PartitionArgs,
}

impl TestTopics {
    pub async fn create(kafka: KafkaArgs, partitions: PartitionArgs) -> Self {
        let prefix = super::unique("t") + ".";
        let topics = Topics::with_prefix(&prefix);
        let created = create_topics(&kafka, &partitions.specs(&topics)).await.expect("create topics");
        assert_eq!(created.len(), 5, "fresh topics must all be created: {created:?}");
        Self { prefix, topics, kafka, partitions }
    }

    pub async fn shared() -> Self {
        Self::create(Broker::kafka(), PartitionArgs::default()).await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cluster_ids_are_base64url_of_16_bytes() {
        assert_eq!(super::base64_url(&[0u8; 16]), "AAAAAAAAAAAAAAAAAAAAAA");
        assert_eq!(super::base64_url(&[0xfb, 0xff, 0xbf]), "-_-_");
        assert!((0..1000).all(|_| !super::cluster_id().starts_with('-')), "an id starting with - reads as an option");
    }
}
