use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use tradeflow_producer::{PricesArgs, ProducerArgs};

pub async fn run(args: ProducerArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let dir = args.dir.clone();
    let report = tradeflow_producer::trade_logs::run(args, shutdown)
        .await
        .with_context(|| format!("producer writing into {}", dir.display()))?;
    for (client, lines) in report.lines_per_client {
        tracing::info!(%client, lines, "written");
    }
    Ok(())
}

pub async fn run_prices(args: PricesArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let brokers = args.kafka.brokers.clone();
    if !super::reach_kafka(&args.kafka, &shutdown).await? {
        return Ok(());
    }
    tradeflow_producer::prices::run(args, shutdown)
        .await
        .with_context(|| format!("price feed publishing to {brokers}"))?;
    Ok(())
}
