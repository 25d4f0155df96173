//! `tradeflow`: one binary, a subcommand per service. Thin: parse flags, set up logging and the
//! shutdown token, call the service's library `run`.

mod commands;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "tradeflow", version, about = "Real-time trade pipeline: trade logs → Kafka → live positions")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write mock trade logs, one file per client per day (SPEC §1).
    Producer(tradeflow_producer::ProducerArgs),
    /// Tail the trade logs into Kafka `trades` (bad lines to `trades.dlq`); `--backfill` republishes past days.
    Ingestor(tradeflow_ingestor::IngestorArgs),
    /// Consume `trades` into summary rows: snapshots in Postgres, changes on `summaries`.
    Aggregator(tradeflow_aggregator::AggregatorArgs),
    /// Rebuild whole trade dates from the `trades` topic and replace their rows atomically.
    Backfill(tradeflow_aggregator::backfill::BackfillArgs),
    /// Snapshot history upkeep once: date partitions around today, and retention (`--history-days`).
    History(commands::aggregator::HistoryArgs),
    /// Compare the summary rows in Postgres with the oracle of the log files (exit 1 on any difference).
    Verify(commands::aggregator::VerifyArgs),
    /// Publish a random-walk market price feed to `prices`.
    Prices(tradeflow_producer::PricesArgs),
    /// Print the expected summary rows computed straight from the log files.
    Oracle(commands::oracle::OracleArgs),
    /// Mapping files (docs/mapping.md): `check` one against sample logs.
    #[command(subcommand)]
    Mapping(commands::mapping::MappingCommand),
    /// Dead letters (`trades.dlq`): `list`, `show` one line, `redrive` after a mapping fix.
    #[command(subcommand)]
    Dlq(commands::dlq::DlqCommand),
    /// Create the topics (idempotent) with their partition counts and compaction.
    Topics(commands::topics::TopicsArgs),
    /// After a deliberate recreate of `trades`: move stored offsets that do not belong to its log to the log start.
    RebaseOffsets(commands::rebase::RebaseArgs),
    /// Create the topics and migrate the snapshot tables (idempotent): run once before the services.
    Init(commands::topics::InitArgs),
    /// Generate the deployment's secrets once (dashboard signing secret, Postgres passwords) into a directory.
    Secrets(commands::secrets::SecretsArgs),
    /// Serve the live web view: the page, the websocket protocol, `/api/summary`.
    Dashboard(tradeflow_dashboard::DashboardArgs),
    /// Print a signed token entitling its bearer to one client's rows on the dashboard.
    Token(tradeflow_dashboard::config::TokenArgs),
    /// Watch a client's rows from the terminal, one line per dashboard frame.
    Tail(tradeflow_dashboard::config::TailArgs),
}

/// Exit status: 0 done; 1 an error (printed as anyhow prints it); a command's own status for a
/// partial outcome ([`commands::PartialOutcome`], e.g. 2 from `dlq redrive`).
fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<commands::PartialOutcome>() {
            Some(partial) => {
                eprintln!("{partial}");
                std::process::ExitCode::from(partial.code)
            }
            None => {
                eprintln!("Error: {e:?}");
                std::process::ExitCode::FAILURE
            }
        },
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tradeflow_core::telemetry::init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = runtime.block_on(async move {
        let shutdown = tradeflow_core::shutdown::on_signal();
        match cli.command {
            Command::Producer(args) => commands::producer::run(args, shutdown).await,
            Command::Ingestor(args) => commands::ingestor::run(args, shutdown).await,
            Command::Aggregator(args) => commands::aggregator::run(args, shutdown).await,
            Command::Backfill(args) => commands::aggregator::backfill(args, shutdown).await,
            Command::Verify(args) => commands::aggregator::verify(args).await,
            Command::History(args) => commands::aggregator::history(args).await,
            Command::Prices(args) => commands::producer::run_prices(args, shutdown).await,
            Command::Oracle(args) => commands::oracle::run(args),
            Command::Mapping(command) => commands::mapping::run(command),
            Command::Dlq(command) => commands::dlq::run(command).await,
            Command::Topics(args) => commands::topics::run(args).await,
            Command::RebaseOffsets(args) => commands::rebase::run(args).await,
            Command::Init(args) => commands::topics::init(args).await,
            Command::Secrets(args) => commands::secrets::run(args),
            Command::Dashboard(args) => commands::dashboard::run(args, shutdown).await,
            Command::Token(args) => commands::dashboard::token(args),
            Command::Tail(args) => commands::dashboard::tail(args, shutdown).await,
        }
    });
    // The services awaited their own work; what may still run on the blocking pool is a check
    // abandoned at a stop (a first Kafka contact waits up to 15 s): not waited for.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    result
}
