//! Integration tests: a real Apache Kafka (SPEC §5) and a real Postgres.
//!
//! `scripts/test.sh` starts a shared Kafka node and finds Postgres, and passes them in
//! `TRADEFLOW_TEST_BROKERS` and `DATABASE_URL`; without them the harness starts its own node from
//! the cached Kafka jars (`scripts/kafka/node.sh`) and uses the local Postgres. Each test gets its own topics (a unique
//! prefix), consumer groups and database.

mod harness;

mod aggregator;
mod backfill;
mod bars;
mod broker_faults;
mod browser;
mod chaos;
mod cli;
mod compose;
mod dashboard;
mod day_pnl;
mod failover;
mod feed_health;
mod foundation;
mod history;
mod ingestor;
mod mapping;
mod odd_input;
mod page_bench;
mod page_trace;
mod prices_feed;
mod redrive;
mod refused;
mod secure;
mod smoke;
