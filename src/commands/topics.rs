use anyhow::Context as _;
use clap::Args;
use tradeflow_core::kafka::{KafkaArgs, create_topics};
use tradeflow_core::topics::{PartitionArgs, TopicArgs};

#[derive(Args, Debug)]
pub struct TopicsArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    topics: TopicArgs,
    #[command(flatten)]
    partitions: PartitionArgs,
}

pub async fn run(args: TopicsArgs) -> anyhow::Result<()> {
    let specs = args.partitions.specs(&args.topics.topics());
    let created = create_topics(&args.kafka, &specs)
        .await
        .with_context(|| format!("creating topics on {}", args.kafka.brokers))?;
    for spec in &specs {
        let state = if created.contains(&spec.name) { "created" } else { "exists" };
        println!("{state}\t{}\tpartitions={}\tcompacted={}", spec.name, spec.partitions, spec.compacted);
    }
    Ok(())
}
