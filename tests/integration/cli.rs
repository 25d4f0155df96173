//! The command line: every subcommand answers `--help`, and no help shows a secret its
//! environment holds (clap prints `[env: NAME=value]` for variables that are set, unless hidden).

use crate::harness;

const COMMANDS: [&str; 15] = [
    "producer",
    "ingestor",
    "aggregator",
    "backfill",
    "history",
    "verify",
    "prices",
    "oracle",
    "topics",
    "init",
    "rebase-offsets",
    "secrets",
    "dashboard",
    "token",
    "tail",
];

#[test]
fn no_help_shows_a_secret_from_the_environment() {
    let secret = "hunter2-not-for-help";
    let env = [
        ("DATABASE_URL", format!("postgres://tradeflow:{secret}@127.0.0.1:5432/tradeflow")),
        ("TRADEFLOW_AUTH_SECRET", secret.to_owned()),
        ("TRADEFLOW_READER_PASSWORD", secret.to_owned()),
        ("TRADEFLOW_KAFKA_OPTIONS", format!("sasl.password={secret}")),
    ];
    for command in COMMANDS {
        let out = std::process::Command::new(harness::tradeflow_bin())
            .args([command, "--help"])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("run tradeflow");
        assert!(out.status.success(), "`tradeflow {command} --help` failed: {}", String::from_utf8_lossy(&out.stderr));
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(text.contains("--help"), "`tradeflow {command} --help` printed no help");
        assert!(!text.contains(secret), "`tradeflow {command} --help` shows a secret:\n{text}");
    }
}
