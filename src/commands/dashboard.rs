use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use tradeflow_core::ClientId;
use tradeflow_dashboard::config::{DashboardArgs, TailArgs, TokenArgs};
use tradeflow_dashboard::token::TokenKey;

pub async fn run(args: DashboardArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listen = args.listen;
    if !super::reach_kafka(&args.kafka, &shutdown).await? {
        return Ok(());
    }
    tradeflow_dashboard::run(args, shutdown).await.with_context(|| format!("dashboard on {listen}"))
}

pub fn token(args: TokenArgs) -> anyhow::Result<()> {
    let client = ClientId::parse(&args.client)?;
    let secret =
        tradeflow_dashboard::config::read_secret(args.auth_secret.as_deref(), args.auth_secret_file.as_deref())
            .context("reading --auth-secret-file")?
            .context("no TRADEFLOW_AUTH_SECRET / --auth-secret or --auth-secret-file")?;
    let key = TokenKey::new(&secret).context("TRADEFLOW_AUTH_SECRET / --auth-secret")?;
    let expires = chrono::Utc::now().timestamp() + i64::from(args.ttl_hours) * 3600;
    println!("{}", key.sign(&client, expires));
    Ok(())
}

pub async fn tail(args: TailArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let url = args.url.clone();
    tradeflow_dashboard::tail::run(args, shutdown).await.with_context(|| format!("tail {url}"))
}
