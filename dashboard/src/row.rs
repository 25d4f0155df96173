//! A row's identity within its client and the filters a subscription or a query selects rows by:
//! shared by the live rows, the subscribers' outboxes and the REST answers.

use chrono::NaiveDate;
use compact_str::CompactString;
use tradeflow_core::summary::SummaryRow;

/// A row's identity within its client: (trade_date, account, symbol).
pub type RowKey = (NaiveDate, CompactString, CompactString);

pub fn row_key(row: &SummaryRow) -> RowKey {
    (row.trade_date, row.account_id.clone(), row.symbol.clone())
}

/// Optional account / symbol filters of a subscription.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub account: Option<CompactString>,
    pub symbol: Option<CompactString>,
}

impl Filter {
    pub fn matches(&self, row: &SummaryRow) -> bool {
        self.account.as_ref().is_none_or(|a| *a == row.account_id)
            && self.symbol.as_ref().is_none_or(|s| *s == row.symbol)
    }
}
