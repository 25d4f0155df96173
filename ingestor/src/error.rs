//! What can stop the ingestor (a bad line never does: it goes to the dead-letter topic).

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{path}: {source}")]
    Io { path: std::path::PathBuf, source: std::io::Error },
    #[error(transparent)]
    Cursor(#[from] crate::cursor::CursorError),
    #[error("Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("the broker rejected a record: {0}")]
    Delivery(String),
    #[error("cannot serve metrics on {addr} (--metrics-addr, TRADEFLOW_INGESTOR_METRICS_ADDR): {source}")]
    Metrics { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("a file reader task failed: {0}")]
    Task(String),
    #[error(transparent)]
    Mapping(#[from] tradeflow_core::mapping::MappingError),
    /// Shutdown came while a line waited for room in the producer's full queue (the broker slow
    /// or down): that line was not sent, and is read again at the next start.
    #[error(
        "stopped while the producer's queue was full (the broker is slow or down); unsent lines are read again at the next start"
    )]
    Stopped,
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(
        "{0} was rewritten while the backfill read it (nothing of its new content was published): run the backfill again"
    )]
    RewrittenDuringBackfill(String),
    #[error("the backfill published every other file, but could not read these (not regular files): {0}")]
    BackfillSkipped(String),
}
