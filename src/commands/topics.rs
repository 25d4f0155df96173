use anyhow::Context as _;
use clap::Args;
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
}

pub async fn run(args: TopicsArgs) -> anyhow::Result<()> {
    super::reach_kafka(&args.kafka).await?;
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
    /// Make sure this file holds the dashboard's signing secret: a random one is written (mode 0600)
    /// when it is missing or empty, an existing one is kept (the compose file's secrets volume).
    #[arg(long, env = "TRADEFLOW_AUTH_SECRET_FILE")]
    auth_secret_file: Option<std::path::PathBuf>,
}

/// Writes a random secret (32 bytes from the OS, hex) to `path` unless it already holds one.
fn ensure_secret_file(path: &std::path::Path) -> anyhow::Result<bool> {
    use std::io::{Read as _, Write as _};
    use std::os::unix::fs::OpenOptionsExt as _;
    if std::fs::read_to_string(path).is_ok_and(|s| !s.trim().is_empty()) {
        return Ok(false);
    }
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).context("reading /dev/urandom")?;
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    file.write_all(format!("{secret}\n").as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(true)
}

/// Creates the topics and migrates the snapshot tables (both idempotent), then sets the read-only
/// role's password when given.
pub async fn init(args: InitArgs) -> anyhow::Result<()> {
    run(args.topics).await?;
    let url = &args.database.database_url;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(30))
        .connect(url)
        .await
        .with_context(|| format!("connecting to {}", redact(url)))?;
    tradeflow_aggregator::store::MIGRATOR.run(&pool).await.context("running the migrations")?;
    println!("migrated\t{}", redact(url));
    if let Some(password) = args.reader_password.filter(|p| !p.is_empty()) {
        // ALTER ROLE takes no bind parameters: quote the literal (doubling single quotes).
        let sql = format!("ALTER ROLE tradeflow_reader PASSWORD '{}'", password.replace('\'', "''"));
        sqlx::raw_sql(&sql).execute(&pool).await.context("setting the tradeflow_reader password")?;
        println!("password set\ttradeflow_reader");
    }
    pool.close().await;
    if let Some(path) = &args.auth_secret_file {
        let made = ensure_secret_file(path)?;
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
