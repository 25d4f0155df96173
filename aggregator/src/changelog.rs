//! The live changelog on `summaries`: every row changed by trades, coalesced per poll batch.
//! The record type lives in `tradeflow-core` (the dashboard reads it).

pub use tradeflow_core::changelog::SummaryChange;
