//! The record fields a mapping can fill: SPEC §1's mapping table, with what each one holds.

/// One field of the trade record (SPEC §1 "Mapping spec").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RecordField {
    OrderNo,
    ActivityTime,
    FillNumber,
    ResponseType,
    OrderId,
    Symbol,
    Side,
    Price,
    Quantity,
    AccountId,
    ErrorCode,
    Timestamp,
    ExchangeOrderId,
    ChildResponseType,
    Duration,
    ExchTs,
}

/// What a record field holds, which decides the mapping types it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// i64 (`order_no`, `fill_number`, `order_id`, `timestamp`).
    Int64,
    /// i32 (`error_code`).
    Int32,
    /// Integer ≥ 0 (`quantity`).
    Quantity,
    /// Exact decimal ≥ 0 (`price`).
    Price,
    /// Nanosecond wall-clock time (`activity_time`).
    Time,
    /// `B` or `S`.
    Side,
    /// Text; `non_empty` for `symbol` and `account_id`.
    Text { non_empty: bool },
}

impl RecordField {
    pub const ALL: [RecordField; 16] = [
        RecordField::OrderNo,
        RecordField::ActivityTime,
        RecordField::FillNumber,
        RecordField::ResponseType,
        RecordField::OrderId,
        RecordField::Symbol,
        RecordField::Side,
        RecordField::Price,
        RecordField::Quantity,
        RecordField::AccountId,
        RecordField::ErrorCode,
        RecordField::Timestamp,
        RecordField::ExchangeOrderId,
        RecordField::ChildResponseType,
        RecordField::Duration,
        RecordField::ExchTs,
    ];

    /// The record's (JSON) name, e.g. `activity_time`.
    pub fn name(self) -> &'static str {
        match self {
            RecordField::OrderNo => "order_no",
            RecordField::ActivityTime => "activity_time",
            RecordField::FillNumber => "fill_number",
            RecordField::ResponseType => "response_type",
            RecordField::OrderId => "order_id",
            RecordField::Symbol => "symbol",
            RecordField::Side => "side",
            RecordField::Price => "price",
            RecordField::Quantity => "quantity",
            RecordField::AccountId => "account_id",
            RecordField::ErrorCode => "error_code",
            RecordField::Timestamp => "timestamp",
            RecordField::ExchangeOrderId => "exchange_order_id",
            RecordField::ChildResponseType => "child_response_type",
            RecordField::Duration => "duration",
            RecordField::ExchTs => "exch_ts",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Position in [`Self::ALL`] (a slot index).
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn kind(self) -> FieldKind {
        match self {
            RecordField::OrderNo | RecordField::FillNumber | RecordField::OrderId | RecordField::Timestamp => {
                FieldKind::Int64
            }
            RecordField::ErrorCode => FieldKind::Int32,
            RecordField::Quantity => FieldKind::Quantity,
            RecordField::Price => FieldKind::Price,
            RecordField::ActivityTime => FieldKind::Time,
            RecordField::Side => FieldKind::Side,
            RecordField::Symbol | RecordField::AccountId => FieldKind::Text { non_empty: true },
            RecordField::ResponseType
            | RecordField::ExchangeOrderId
            | RecordField::ChildResponseType
            | RecordField::Duration
            | RecordField::ExchTs => FieldKind::Text { non_empty: false },
        }
    }

    /// Required by SPEC §1: a line without it is a bad line.
    pub fn required(self) -> bool {
        matches!(
            self,
            RecordField::ActivityTime
                | RecordField::Symbol
                | RecordField::Side
                | RecordField::Price
                | RecordField::Quantity
                | RecordField::AccountId
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_index_is_position() {
        for (i, f) in RecordField::ALL.into_iter().enumerate() {
            assert_eq!(RecordField::from_name(f.name()), Some(f));
            assert_eq!(f.index(), i);
        }
        assert_eq!(RecordField::from_name("prices"), None);
    }
}
