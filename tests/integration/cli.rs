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

/// A backfill's arguments are checked before it takes anything (found by a newcomer's trial: a
/// reversed range ran and wrote rows; a lease of 2^64−1 s read the whole topic, then overflowed).
#[test]
fn a_backfill_refuses_a_reversed_range_and_an_absurd_lease_before_connecting() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(harness::tradeflow_bin())
            .arg("backfill")
            .args(args)
            // Nowhere: the refusal must come before any connection.
            .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
            .env("KAFKA_BROKERS", "127.0.0.1:1")
            .output()
            .expect("run tradeflow");
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, err) = run(&["--from", "2026-11-21", "--to", "2026-11-20"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("--to 2026-11-20 is before --from 2026-11-21"), "{err}");
    for lease in ["2", "86401", "18446744073709551615"] {
        let (code, err) = run(&["--from", "earliest", "--lease-secs", lease]);
        assert_eq!(code, Some(2), "--lease-secs {lease}: {err}");
        assert!(err.contains("3..=86400"), "--lease-secs {lease}: {err}");
    }
}
