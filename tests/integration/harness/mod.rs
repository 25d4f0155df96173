//! The test harness: brokers, topics, databases, deadlines.

#![allow(dead_code)]

pub mod broker;
pub mod consume;
pub mod http;
pub mod postgres;
pub mod secure;
pub mod service;
pub mod wait;
pub mod ws;

#[allow(unused_imports)]
pub use broker::{Broker, KafkaCluster, TestTopics};
pub use consume::{Record, TopicReader};
pub use postgres::TestDatabase;
pub use service::Service;
pub use wait::eventually;

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// The `tradeflow` binary built for this test run, or `TRADEFLOW_TEST_BIN` when set (the page
/// benchmark alternates two builds of the page that way without rebuilding:
/// docs/benchmarks.md#the-page). Not `TRADEFLOW_BIN`: that is dev.sh's and the stack benchmarks'
/// setting, and one exported for them must not swap the binary every test runs.
pub fn tradeflow_bin() -> std::path::PathBuf {
    std::env::var_os("TRADEFLOW_TEST_BIN")
        .map_or_else(|| env!("CARGO_BIN_EXE_tradeflow").into(), std::path::PathBuf::from)
}

/// A fresh temporary directory (removed by the test when it passes).
pub fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(unique("tradeflow-test-"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
