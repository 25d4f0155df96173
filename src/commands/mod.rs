pub mod aggregator;
pub mod dashboard;
pub mod ingestor;
pub mod oracle;
pub mod producer;
pub mod topics;
