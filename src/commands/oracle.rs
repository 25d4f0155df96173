use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use chrono::Utc;
use clap::{Args, ValueEnum};
use tradeflow_core::oracle::Oracle;
use tradeflow_core::summary::SummaryRow;

#[derive(Args, Debug)]
pub struct OracleArgs {
    /// The log directory.
    #[arg(long, env = "TRADE_LOG_DIR")]
    logs: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    format: Format,
    #[command(flatten)]
    mapping: tradeflow_core::mapping::MappingArgs,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Csv,
    Json,
}

const CSV_HEADER: &str = "trade_date,client_id,account_id,symbol,trade_count,buy_qty,sell_qty,net_qty,\
buy_notional,sell_notional,avg_buy_price,avg_sell_price,last_price,first_trade_at,last_trade_at";

pub fn run(args: OracleArgs) -> anyhow::Result<()> {
    let mapping = args.mapping.load()?;
    let oracle = Oracle::from_dir_mapped(&args.logs, &mapping)
        .with_context(|| format!("computing the oracle of {}", args.logs.display()))?;
    let now = Utc::now();
    let rows: Vec<SummaryRow> = oracle.rows.iter().map(|(k, p)| SummaryRow::new(k, p, None, now)).collect();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &rows).context("writing JSON")?;
            writeln!(out)?;
        }
        Format::Csv => {
            writeln!(out, "{CSV_HEADER}")?;
            for r in &rows {
                let opt = |d: Option<rust_decimal::Decimal>| d.map(|d| d.to_string()).unwrap_or_default();
                writeln!(
                    out,
                    "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                    r.trade_date,
                    r.client_id,
                    csv(&r.account_id),
                    csv(&r.symbol),
                    r.trade_count,
                    r.buy_qty,
                    r.sell_qty,
                    r.net_qty,
                    r.buy_notional,
                    r.sell_notional,
                    opt(r.avg_buy_price),
                    opt(r.avg_sell_price),
                    r.last_price,
                    r.first_trade_at,
                    r.last_trade_at
                )?;
            }
        }
    }
    out.flush()?;
    tracing::info!(rows = rows.len(), lines = oracle.lines, bad_lines = oracle.bad_lines, "oracle computed");
    Ok(())
}

/// Quotes a CSV field when it holds a comma, quote or newline.
fn csv(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
}
