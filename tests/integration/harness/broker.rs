//! The broker: the shared one from `TRADEFLOW_TEST_BROKERS`, or a tansu process of the test's own.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tradeflow_core::kafka::{KafkaArgs, create_topics};
use tradeflow_core::topics::{PartitionArgs, Topics};

/// Where a tansu process keeps its data.
#[derive(Clone, Debug)]
pub enum Storage {
    Memory,
    /// sqlite in this directory: survives a broker restart.
    Sqlite(PathBuf),
}

/// A tansu broker process, killed on drop.
pub struct TansuProcess {
    pub port: u16,
    storage: Storage,
    child: Option<Child>,
    log: PathBuf,
}

pub fn tansu_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("TANSU_BIN") {
        return bin.into();
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let cache = std::env::var("TRADEFLOW_CACHE").unwrap_or_else(|_| format!("{home}/.cache/tradeflow"));
    Path::new(&cache).join("tansu-0.6.0/bin/tansu")
}

pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl TansuProcess {
    pub fn start(storage: Storage) -> Self {
        let mut p = Self { port: free_port(), storage, child: None, log: PathBuf::new() };
        p.spawn();
        p
    }

    fn spawn(&mut self) {
        let bin = tansu_bin();
        assert!(bin.exists(), "tansu not found at {} (run scripts/test.sh, which installs it)", bin.display());
        let (storage_url, cwd) = match &self.storage {
            Storage::Memory => ("memory://tansu/".to_owned(), std::env::temp_dir()),
            Storage::Sqlite(dir) => {
                std::fs::create_dir_all(dir).expect("sqlite dir");
                ("sqlite://tansu.db".to_owned(), dir.clone())
            }
        };
        self.log = std::env::temp_dir().join(format!("tansu-{}.log", self.port));
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("tansu log");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let child = Command::new(&bin)
            .current_dir(cwd)
            .args(tansu_args(&url, &storage_url))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        self.child = Some(child);
        wait_for_port(self.port, Duration::from_secs(30));
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the broker (SIGKILL) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same storage.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for TansuProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// tansu 0.6.0's `broker` arguments.
pub fn tansu_args(listener: &str, storage: &str) -> Vec<String> {
    vec![
        "broker".into(),
        "--listener-url".into(),
        listener.into(),
        "--advertised-listener-url".into(),
        listener.into(),
        "--storage-engine".into(),
        storage.into(),
    ]
}

fn wait_for_port(port: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "broker did not listen on {port} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
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
                    // No broker given: start one for this test process and leave it running until
                    // the process exits (it is a memory broker; nothing is left on disk).
                    let p = TansuProcess::start(Storage::Memory);
                    let brokers = p.brokers();
                    std::mem::forget(p);
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
        assert_eq!(created.len(), 4, "fresh topics must all be created: {created:?}");
        Self { prefix, topics, kafka, partitions }
    }

    pub async fn shared() -> Self {
        Self::create(Broker::kafka(), PartitionArgs::default()).await
    }
}
