pub mod aggregator;
pub mod ingestor;
pub mod oracle;
pub mod producer;
pub mod topics;
pub mod dashboard;
