use anyhow::Context as _;
use clap::Args;
use tradeflow_core::group_coordinator::wait_for_group_coordinator;
use tradeflow_core::kafka::{KafkaArgs, check_topics, create_topics};
use tradeflow_core::topics::{PartitionArgs, TopicArgs};

#[derive(Args, Debug)]
pub struct TopicsArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    topics: TopicArgs,
    #[command(flatten)]
    partitions: PartitionArgs,
    /// The aggregator's consumer group, whose coordinator is made ready here (a fresh cluster
    /// creates its offsets topic on the first request for a coordinator: ~6 s a first join would
    /// otherwise wait while trades queue).
    #[arg(long = "aggregator-group", env = "TRADEFLOW_AGGREGATOR_GROUP", default_value = "tradeflow-aggregator")]
    aggregator_group: String,
    #[command(flatten)]
    timeout: super::KafkaTimeout,
}

/// How long `topics` waits for the group coordinator before warning and going on.
const COORDINATOR_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Fails within `--timeout-secs` (30 s) when no bootstrap server answers, naming them.
pub async fn run(args: TopicsArgs) -> anyhow::Result<()> {
    super::require_kafka(&args.kafka, args.timeout.duration()).await?;
    let specs = args.partitions.specs(&args.topics.topics());
    let created = create_topics(&args.kafka, &specs)
        .await
        .with_context(|| format!("creating topics on {}", args.kafka.brokers))?;
    for spec in &specs {
        let state = if created.contains(&spec.name) { "created" } else { "exists" };
        println!("{state}\t{}\tpartitions={}\tcompacted={}", spec.name, spec.partitions, spec.compacted);
    }
    // Topics that existed: do they keep tradeflow's guarantees?
    let existing: Vec<_> = specs.iter().filter(|s| !created.contains(&s.name)).cloned().collect();
    let findings = check_topics(&args.kafka, &existing).await.context("checking the existing topics")?;
    for f in &findings {
        let level = if f.error { "error" } else { "warning" };
        println!("{level}\t{}\t{}", f.topic, f.message);
    }
    let errors = findings.iter().filter(|f| f.error).count();
    if errors > 0 {
        anyhow::bail!(
            "{errors} existing topic settings break tradeflow's guarantees (see above); fix or recreate those topics"
        );
    }
    let (kafka, group, topic) = (args.kafka.clone(), args.aggregator_group.clone(), args.topics.topics().trades);
    let ready =
        tokio::task::spawn_blocking(move || wait_for_group_coordinator(&kafka, &group, &topic, COORDINATOR_TIMEOUT))
            .await
            .context("waiting for the group coordinator")?;
    match ready {
        Ok(took) => println!("ready\tgroup coordinator for {}\t{} ms", args.aggregator_group, took.as_millis()),
        // Not fatal: the services wait for it themselves (the first join is only slower).
        Err(e) => println!(
            "warning\tgroup coordinator for {}\tnot ready after {COORDINATOR_TIMEOUT:?}: {e}",
            args.aggregator_group
        ),
    }
    Ok(())
}

/// `tradeflow init`: what a deployment needs before the services start.
#[derive(Args, Debug)]
pub struct InitArgs {
    #[command(flatten)]
    topics: TopicsArgs,
    #[command(flatten)]
    database: tradeflow_aggregator::config::DatabaseArgs,
    /// Password for the read-only SQL role `tradeflow_reader` (for `psql` from other hosts; unset: unchanged).
    #[arg(long, env = "TRADEFLOW_READER_PASSWORD", hide_env_values = true)]
    reader_password: Option<String>,
    /// The read-only role's password from a file instead (its first line; `tradeflow secrets` makes one).
    #[arg(long, env = "TRADEFLOW_READER_PASSWORD_FILE", conflicts_with = "reader_password")]
    reader_password_file: Option<std::path::PathBuf>,
    /// Make sure this file holds the dashboard's signing secret: a random one is written (mode 0600)
    /// when it is missing or empty, an existing one is kept.
    #[arg(long, env = "TRADEFLOW_AUTH_SECRET_FILE")]
    auth_secret_file: Option<std::path::PathBuf>,
}

/// Creates the topics and migrates the snapshot tables (both idempotent), then sets the read-only
/// role's password when given.
pub async fn init(args: InitArgs) -> anyhow::Result<()> {
    run(args.topics).await?;
    let url = &args.database.url().context("reading --database-password-file")?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(30))
        .connect(url)
        .await
        .with_context(|| format!("connecting to {}", redact(url)))?;
    tradeflow_aggregator::store::MIGRATOR.run(&pool).await.context("running the migrations")?;
    println!("migrated\t{}", redact(url));
    let from_file = match &args.reader_password_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned(),
        ),
        None => None,
    };
    if let Some(password) = args.reader_password.or(from_file).filter(|p| !p.is_empty()) {
        // ALTER ROLE takes no bind parameters: quote the literal (doubling single quotes).
        let sql = format!("ALTER ROLE tradeflow_reader PASSWORD '{}'", password.replace('\'', "''"));
        sqlx::raw_sql(&sql).execute(&pool).await.context("setting the tradeflow_reader password")?;
        println!("password set\ttradeflow_reader");
    }
    pool.close().await;
    if let Some(path) = &args.auth_secret_file {
        let made = super::secrets::ensure_secret_file(path, 0o600)?;
        println!("{}\t{}", if made { "secret generated" } else { "secret kept" }, path.display());
    }
    Ok(())
}

/// The URL without its password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}
