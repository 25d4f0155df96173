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

/// With a broker address where nothing listens, `topics` and `rebase-offsets` fail within their
/// bound (`--timeout-secs`, env `TRADEFLOW_KAFKA_TIMEOUT_SECS`; 30 s by default) naming the
/// bootstrap servers they tried — before, they waited for minutes. Awaited with a deadline: a
/// command that hangs fails the test instead of hanging it (and is killed).
#[tokio::test]
async fn topics_and_rebase_fail_in_bounded_time_when_no_broker_answers() {
    let nowhere = format!("127.0.0.1:{}", harness::broker::free_port());
    let bound = std::time::Duration::from_secs(3);
    for (command, flag) in [("topics", true), ("rebase-offsets", false)] {
        let mut cmd = tokio::process::Command::new(harness::tradeflow_bin());
        cmd.arg(command)
            .env("KAFKA_BROKERS", &nowhere)
            .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
            .kill_on_drop(true);
        // One through the flag, one through the environment.
        if flag {
            cmd.args(["--timeout-secs", "3"]);
        } else {
            cmd.env("TRADEFLOW_KAFKA_TIMEOUT_SECS", "3");
        }
        let started = std::time::Instant::now();
        let out = tokio::time::timeout(bound + std::time::Duration::from_secs(20), cmd.output())
            .await
            .unwrap_or_else(|_| panic!("`tradeflow {command}` still waiting after {:?}", started.elapsed()))
            .expect("run tradeflow");
        let took = started.elapsed();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "`tradeflow {command}`: {err}");
        assert!(err.contains(&format!("Kafka at {nowhere} did not answer within 3s")), "`tradeflow {command}`: {err}");
        assert!(took >= bound, "`tradeflow {command}` gave up before its bound: {took:?}");
    }
}

/// A service stopped while its first contact with Kafka is still waiting (up to 15 s; nothing
/// listens at the address) exits at once, with status 0, and starts nothing — before, it waited
/// the 15 s out, then started its readers only to stop them (a newcomer's trial: 12 s).
#[tokio::test]
async fn a_service_stopped_while_kafka_does_not_answer_exits_at_once() {
    let nowhere = format!("127.0.0.1:{}", harness::broker::free_port());
    let dir = harness::temp_dir();
    let child = tokio::process::Command::new(harness::tradeflow_bin())
        .args(["ingestor", "--metrics-addr", "127.0.0.1:0"])
        .env("KAFKA_BROKERS", &nowhere)
        .env("TRADE_LOG_DIR", dir.join("logs"))
        .env("TRADEFLOW_INGESTOR_STATE", dir.join("state"))
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the ingestor");
    let pid = child.id().expect("pid").to_string();
    // 1.5 s into its first contact (which waits up to 15 s for an answer), it must still be running.
    let out = child.wait_with_output();
    tokio::pin!(out);
    let started = tokio::time::timeout(std::time::Duration::from_millis(1500), &mut out).await;
    assert!(started.is_err(), "the ingestor exited on its own: {started:?}");
    let stopped = std::time::Instant::now();
    let _ = std::process::Command::new("kill").args(["-TERM", &pid]).status();
    let out = tokio::time::timeout(std::time::Duration::from_secs(30), out)
        .await
        .expect("the ingestor still running 30 s after SIGTERM")
        .expect("wait");
    let took = stopped.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(took < std::time::Duration::from_secs(5), "exit took {took:?}: {err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("ingestor running"), "it started after the stop: {err}");
    let _ = std::fs::remove_dir_all(&dir);
}
