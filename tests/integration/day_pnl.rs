//! Day P&L on holdings: with known marks and a known previous close, the view `holdings` gives
//! each holding's day P&L exactly as the oracle's rows and the rule (tradeflow-core/src/day_pnl.rs)
//! do — checked by `Pipeline::converges` (and `tradeflow verify`) and here by hand for one holding.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use rust_decimal::Decimal;
use sqlx::Row as _;
use tradeflow_core::day_pnl::DayBook;
use tradeflow_core::oracle::Oracle;

use crate::aggregator::Pipeline;
use crate::dashboard::Dash;
use crate::harness::broker::free_port;
use crate::harness::eventually;
use crate::harness::http::metric;

const LONG: Duration = Duration::from_secs(120);
const SYMBOLS: [&str; 5] = ["BANKNIFTY", "AAPL", "AMZN", "FB", "GOOG"];

#[tokio::test]
async fn day_pnl_on_holdings_equals_the_oracle_with_known_marks_and_previous_close() {
    let p = Pipeline::new().await;
    let dash = Dash::start_on(p.topics.clone(), &[], &[]).await;
    let now = Utc::now();
    let yesterday = now.date_naive().pred_opt().expect("yesterday");
    // Yesterday's close (the day-open mark) and today's mark, per symbol.
    for (i, s) in SYMBOLS.iter().enumerate() {
        dash.tick_at(s, &format!("{}.25", 100 + i), now - TimeDelta::days(1)).await;
        dash.tick_at(s, &format!("{}.75", 101 + i), now - TimeDelta::seconds(1)).await;
    }
    let port = free_port();
    let _aggregator = p.start_with("aggregator", port, &[("TRADEFLOW_BARS_FLUSH_MS", "100")]);
    eventually("the aggregator's marks and bars", LONG, || async {
        let marks = metric(port, "tradeflow_aggregator_price_ticks_total").await?;
        let bars = metric(port, "tradeflow_aggregator_bar_ticks_total").await?;
        (marks >= 10 && bars >= 10).then_some(())
    })
    .await;
    // Trades yesterday (the opening position) and today.
    p.produce(&["--clients", "1,2", "--count", "300", "--seed", "5", "--start", &format!("{yesterday}T09:00:00")]);
    p.produce(&[
        "--clients",
        "1,2",
        "--count",
        "300",
        "--seed",
        "6",
        "--start",
        &format!("{}T00:00:01", now.date_naive()),
    ]);
    let _ingestor = p.start("ingestor", free_port());
    p.converges().await;

    // By hand for one holding: open_pos × (mark − previous close) + today's trades at the mark.
    let row = sqlx::query(
        "SELECT client_id, account_id, symbol, open_position, day_open_mark, mark_price, day_pnl FROM holdings
         WHERE day_pnl IS NOT NULL AND open_position <> 0 ORDER BY client_id, account_id, symbol LIMIT 1",
    )
    .fetch_one(&p.db.pool)
    .await
    .expect("a holding with an opening position and a day P&L");
    let symbol: String = row.get("symbol");
    let i = SYMBOLS.iter().position(|s| *s == symbol).expect("a known symbol");
    let open: Decimal = format!("{}.25", 100 + i).parse().expect("open");
    let mark: Decimal = format!("{}.75", 101 + i).parse().expect("mark");
    assert_eq!(row.get::<Option<Decimal>, _>("day_open_mark"), Some(open), "yesterday's close");
    assert_eq!(row.get::<Option<Decimal>, _>("mark_price"), Some(mark));
    let oracle = Oracle::from_dir(&p.logs).expect("oracle");
    let (client, account): (String, String) = (row.get("client_id"), row.get("account_id"));
    let rows = oracle
        .rows
        .iter()
        .filter(|(k, _)| k.client_id.as_str() == client && k.account_id == account && k.symbol == symbol)
        .map(|(k, p)| (k.trade_date, p));
    let book = DayBook::of(rows, now.date_naive()).expect("representable");
    assert_ne!(book.open_position, 0);
    let by_hand = Decimal::from_i128_with_scale(book.open_position, 0) * (mark - open) + book.sell_notional
        - book.buy_notional
        + Decimal::from_i128_with_scale(book.net_qty, 0) * mark;
    assert_eq!(row.get::<Option<Decimal>, _>("day_pnl"), Some(by_hand));
    p.cleanup();
}
