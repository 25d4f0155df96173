use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use tokio_util::sync::CancellationToken;
use tradeflow_aggregator::AggregatorArgs;
use tradeflow_core::oracle::Oracle;

pub async fn run(args: AggregatorArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let brokers = args.kafka.brokers.clone();
    if !super::reach_kafka(&args.kafka, &shutdown).await? {
        return Ok(());
    }
    tradeflow_aggregator::run(args, shutdown).await.with_context(|| format!("aggregator consuming from {brokers}"))
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The log directory the oracle is computed from; repeat it to add directories holding saved
    /// copies of files that were since truncated or deleted (their lines count too).
    #[arg(long, env = "TRADE_LOG_DIR", required = true, num_args = 1)]
    logs: Vec<PathBuf>,
    #[command(flatten)]
    mapping: tradeflow_core::mapping::MappingArgs,
    #[command(flatten)]
    database: tradeflow_aggregator::config::DatabaseArgs,
}

/// Prints the differences between Postgres and the oracle (rows with their realized P&L, holdings with their day P&L, and fill bars); an error (exit 1) if there are any.
pub async fn verify(args: VerifyArgs) -> anyhow::Result<()> {
    let mapping = args.mapping.load()?;
    let mut oracle = Oracle::new();
    for dir in &args.logs {
        oracle.apply_dir_mapped(dir, &mapping).with_context(|| format!("oracle of {}", dir.display()))?;
    }
    let url = args.database.url().context("reading --database-password-file")?;
    let pool = tradeflow_aggregator::store::connect_url(&url, 4).await.context("connecting to Postgres")?;
    let stored = tradeflow_aggregator::verify::current_rows(&pool).await.context("reading summary_current")?;
    let mut diffs = tradeflow_aggregator::verify::compare(&stored, &oracle);
    let realized =
        tradeflow_aggregator::verify::current_realized_pnl(&pool).await.context("reading summary_current's P&L")?;
    diffs.extend(tradeflow_aggregator::verify::compare_realized_pnl(&realized, &oracle));
    for d in &diffs {
        println!("{d}");
    }
    println!("rows: stored {} expected {}; differences: {}", stored.len(), oracle.rows.len(), diffs.len());
    let held = tradeflow_aggregator::holdings::current_holdings(&pool).await.context("reading holdings")?;
    let held_diffs = tradeflow_aggregator::holdings::compare_holdings(&held, &oracle);
    for d in &held_diffs {
        println!("{d}");
    }
    println!("holdings: stored {}; differences: {}", held.len(), held_diffs.len());
    let day = tradeflow_aggregator::day_pnl::current_day_pnl(&pool).await.context("reading holdings' day P&L")?;
    let day_diffs = tradeflow_aggregator::day_pnl::compare_day_pnl(&pool, &day, &oracle)
        .await
        .context("reading price_bars for the day-open marks")?;
    for d in &day_diffs {
        println!("{d}");
    }
    println!("day P&L: stored {}; differences: {}", day.len(), day_diffs.len());
    let bars = tradeflow_aggregator::fill_bars::current_fill_bars(&pool).await.context("reading fill_bars")?;
    let bar_diffs = tradeflow_aggregator::fill_bars::compare_fill_bars(&bars, &oracle);
    for d in &bar_diffs {
        println!("{d}");
    }
    let past = tradeflow_aggregator::fill_bars::dates_past_retention(&bars, &oracle);
    if !past.is_empty() {
        println!("fill bars not compared on {} trade dates dropped by retention: {past:?}", past.len());
    }
    println!("fill bars: stored {}; differences: {}", bars.bars.len(), bar_diffs.len());
    let n = diffs.len() + held_diffs.len() + day_diffs.len() + bar_diffs.len();
    if n == 0 { Ok(()) } else { anyhow::bail!("{n} differences") }
}

pub async fn backfill(
    args: tradeflow_aggregator::backfill::BackfillArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    args.dates().context("backfill")?;
    if !super::reach_kafka(&args.kafka, &shutdown).await? {
        // A one-shot job: a stop before it began is not a success (`backfill && …` must not go on).
        anyhow::bail!("backfill interrupted before it started; nothing changed");
    }
    let topics = args.topics.topics();
    let report = tradeflow_aggregator::backfill::run(args, shutdown).await.context("backfill")?;
    match report.would_change {
        Some((rows, trades)) => println!(
            "dry run: records read: {}  undecodable: {}  unappliable: {}  would change {rows} rows ({trades:+} trades); nothing written",
            report.records, report.undecodable, report.unappliable
        ),
        None => println!(
            "records read: {}  applied: {}  duplicates dropped: {}  undecodable: {}  unappliable: {}  rows written: {}",
            report.records, report.applied, report.duplicates, report.undecodable, report.unappliable, report.rows
        ),
    }
    if report.undecodable + report.unappliable > 0 {
        println!("{}", refused_summary(&report, &topics));
    }
    Ok(())
}

/// The records a backfill refused (undecodable; trades that would overflow their row): where the
/// first are, and where they were set aside.
fn refused_summary(
    report: &tradeflow_aggregator::backfill::BackfillReport,
    topics: &tradeflow_core::topics::Topics,
) -> String {
    let mut lines = Vec::new();
    for (what, n, at) in [
        ("undecodable records", report.undecodable, &report.undecodable_at),
        ("trades that would overflow their row (unappliable)", report.unappliable, &report.unappliable_at),
    ] {
        if n == 0 {
            continue;
        }
        let named: Vec<String> = at.iter().map(|(p, o)| format!("{p}:{o}")).collect();
        let first = if n > named.len() as u64 { format!("first {} of ", named.len()) } else { String::new() };
        lines.push(format!("{what} on {} ({first}{n} as PARTITION:OFFSET): {}", topics.trades, named.join(" ")));
    }
    let (p, o) = report.undecodable_at.first().or(report.unappliable_at.first()).copied().unwrap_or_default();
    let set_aside = if report.would_change.is_some() {
        "dry run: nothing set aside".to_owned()
    } else {
        format!(
            "{} set aside on {} now (the others were at offsets the live aggregator had refused already)",
            report.set_aside, topics.trades_refused
        )
    };
    format!("{}\n  {set_aside}; inspect one: kcat -C -t {} -p {p} -o {o} -c 1", lines.join("\n"), topics.trades)
}

#[derive(Args, Debug)]
pub struct HistoryArgs {
    #[command(flatten)]
    database: tradeflow_aggregator::config::DatabaseArgs,
    #[command(flatten)]
    retention: tradeflow_aggregator::history::RetentionArgs,
}

/// One history upkeep (what the aggregator does hourly): partitions around today, then retention.
pub async fn history(args: HistoryArgs) -> anyhow::Result<()> {
    let url = args.database.url().context("reading --database-password-file")?;
    let pool = tradeflow_aggregator::store::connect_url(&url, 4).await.context("connecting to Postgres")?;
    tradeflow_aggregator::store::MIGRATOR.run(&pool).await.context("running the migrations")?;
    let today = chrono::Utc::now().date_naive();
    let done = tradeflow_aggregator::history::upkeep(&pool, &args.retention, today).await.context("history upkeep")?;
    for name in &done.partitions {
        println!("partition\t{name}");
    }
    for date in &done.dropped {
        println!("dropped\t{date}");
    }
    for date in &done.bars_dropped {
        println!("dropped bars\t{date}");
    }
    match tradeflow_aggregator::history::cutoff(today, args.retention.history_days) {
        Some(cutoff) => println!("kept\ttrade dates from {cutoff}; {} dropped", done.dropped.len()),
        None => println!("kept\tevery trade date (--history-days 0)"),
    }
    Ok(())
}
