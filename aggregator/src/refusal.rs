//! What the aggregator refuses, and why: the reason codes of `trades.refused` and of
//! `tradeflow_aggregator_refused_total{reason}` (the sink: [`crate::refused`]).

/// Why a record was refused: the `tradeflow.reason_code` header and the label of
/// `tradeflow_aggregator_refused_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    Undecodable,
    Unappliable,
    PostgresRefused,
}

impl Reason {
    pub const ALL: [Reason; 3] = [Reason::Undecodable, Reason::Unappliable, Reason::PostgresRefused];

    pub fn code(self) -> &'static str {
        match self {
            Self::Undecodable => "undecodable",
            Self::Unappliable => "unappliable",
            Self::PostgresRefused => "postgres_refused",
        }
    }
}

/// The detail of an `undecodable` refusal, from decoding a record's payload (`None`: no payload) —
/// one wording for the live aggregator and the backfill, which may set aside the same record.
pub fn undecodable_detail(error: Option<&serde_json::Error>) -> String {
    match error {
        Some(e) => format!("not a trade record: {e}"),
        None => "not a trade record: empty payload".into(),
    }
}

/// One refused item: its identity, the reason, and the bytes to keep.
#[derive(Debug)]
pub struct Refusal<'a> {
    pub reason: Reason,
    pub detail: String,
    pub partition: i32,
    pub offset: i64,
    pub trade_id: Option<String>,
    pub row_key: Option<String>,
    pub sqlstate: Option<String>,
    pub value: &'a [u8],
}
