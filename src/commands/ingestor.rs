use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use tradeflow_ingestor::IngestorArgs;

pub async fn run(args: IngestorArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let what = if args.backfill { "backfill" } else { "ingestor" };
    let dir = args.dir.clone();
    let brokers = args.kafka.brokers.clone();
    // A wrong mapping is refused before anything else (its error names the file's line).
    args.mapping.load()?;
    if !super::reach_kafka(&args.kafka, &shutdown).await? {
        // The live ingestor was told to stop (status 0); a one-shot backfill did not do its job.
        if args.backfill {
            anyhow::bail!("ingestor --backfill interrupted before it started; nothing was published");
        }
        return Ok(());
    }
    tradeflow_ingestor::run(args, shutdown)
        .await
        .with_context(|| format!("{what} reading {} into {brokers}", dir.display()))
}
