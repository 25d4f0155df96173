//! `tradeflow rebase-offsets`: the way out after `trades` was deliberately deleted and created
//! again (or its records deleted): stored offsets that do not belong to the new log move to its
//! start (docs/operations.md#a-recreated-trades-topic).

use anyhow::Context as _;
use clap::Args;
use tradeflow_aggregator::config::DatabaseArgs;
use tradeflow_aggregator::offset_check;
use tradeflow_core::kafka::KafkaArgs;
use tradeflow_core::topics::TopicArgs;

#[derive(Args, Debug)]
pub struct RebaseArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    topics: TopicArgs,
    #[command(flatten)]
    database: DatabaseArgs,
    /// Only print what would move.
    #[arg(long, env = "TRADEFLOW_REBASE_DRY_RUN")]
    dry_run: bool,
    #[command(flatten)]
    timeout: super::KafkaTimeout,
}

/// Moves every mismatched partition's stored offset to its log start; prints one line per
/// partition moved (`rebased  <topic>  partition=P  from=F  to=T  <why>`). A running aggregator
/// that paused the partition resumes it within a second. Exit 1 when a partition could not be
/// checked, and within `--timeout-secs` (30 s) when no bootstrap server answers.
pub async fn run(args: RebaseArgs) -> anyhow::Result<()> {
    super::require_kafka(&args.kafka, args.timeout.duration()).await?;
    let topic = args.topics.topics().trades;
    let url = args.database.url().context("reading --database-password-file")?;
    let pool = tradeflow_aggregator::store::connect_url(&url, 1).await.context("connecting to Postgres")?;
    let client = offset_check::LogOffsets::new(&args.kafka).context("creating a Kafka client")?;
    let watermarks = |p: i32| tokio::task::block_in_place(|| client.get(&topic, p)).map_err(|e| e.to_string());
    let (rebased, errors) =
        offset_check::rebase(&pool, &topic, watermarks, args.dry_run).await.context("rebasing the stored offsets")?;
    let verb = if args.dry_run { "would rebase" } else { "rebased" };
    for r in &rebased {
        println!("{verb}\t{topic}\tpartition={}\tfrom={}\tto={}\t{}", r.partition, r.from, r.to, r.why);
    }
    if rebased.is_empty() {
        println!("nothing to rebase\t{topic}");
    }
    for e in &errors {
        eprintln!("error\t{topic}\t{e}");
    }
    if !errors.is_empty() {
        anyhow::bail!("{} partitions could not be rebased (see above)", errors.len());
    }
    Ok(())
}
