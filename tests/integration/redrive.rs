//! Dead letters you can act on, end to end: logs read with a wrong mapping (a side it does not
//! know) dead-letter their lines; with the mapping fixed, `tradeflow dlq redrive` publishes them
//! under their original identities and the snapshot tables end equal to the oracle of the fixed
//! mapping — once; re-driving again, or after a re-drive killed half-way, changes nothing more;
//! a backfill of the date rebuilds the same rows.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use tradeflow_aggregator::verify::{compare, current_rows};
use tradeflow_core::mapping::Mapping;
use tradeflow_core::oracle::Oracle;

use crate::aggregator::Pipeline;
use crate::harness::service::Service;
use crate::harness::{self, TopicReader, eventually, http};
use crate::mapping::{example, write_csv};

const LONG: Duration = Duration::from_secs(120);

/// A line no mapping here reads (a quantity that is not a number): still failing after the fix.
const NEVER: &str = "2026-11-22T10:00:00.000000000,CQ01,AAPL,BUY,x,1.00,\n";

struct Stage {
    p: Pipeline,
    fixed: PathBuf,
    /// Lines the fix makes good, and lines that stay bad.
    fixable: usize,
    _ingestor: Service,
    _aggregator: Service,
    aggregator_port: u16,
}

/// Logs of three clients (`n` rows each, every 40th side `HOLD`, one unreadable row), read with
/// examples/mappings/csv.toml (which knows BUY and SELL only) until the rows equal its oracle and
/// every bad line is dead-lettered; the fixed mapping (HOLD read as a buy) is written beside.
async fn wrong_mapping_ingested(n: usize) -> Stage {
    let p = Pipeline::new().await;
    std::fs::create_dir_all(&p.logs).expect("logs");
    let fixable: usize = [1, 2, 3].iter().map(|&c| write_csv(&p.logs, c, n)).sum();
    let first = p.logs.join("trades_1_20261122.csv");
    let mut text = std::fs::read_to_string(&first).expect("read");
    text.push_str(NEVER);
    std::fs::write(&first, text).expect("write");
    let wrong_file = example("csv.toml");
    let fixed = p.root.join("fixed.toml");
    let wrong_text = std::fs::read_to_string(&wrong_file).expect("example");
    let fixed_text = wrong_text.replace("SELL = \"S\" }", "SELL = \"S\", HOLD = \"B\" }");
    assert_ne!(fixed_text, wrong_text, "the fix applies");
    std::fs::write(&fixed, fixed_text).expect("fixed mapping");
    let wrong = Mapping::load(&wrong_file).expect("mapping");
    let oracle = Oracle::from_dir_mapped(&p.logs, &wrong).expect("oracle");
    assert_eq!(oracle.bad_lines as usize, fixable + 1);
    let file = wrong_file.display().to_string();
    let ingestor = p.start_with("ingestor", harness::broker::free_port(), &[("TRADEFLOW_MAPPING", file.as_str())]);
    let aggregator_port = harness::broker::free_port();
    let aggregator = p.start("aggregator", aggregator_port);
    converges(&p, &oracle, "the rows to equal the wrong mapping's oracle").await;
    let mut dlq = TopicReader::new(&p.topics.kafka, &p.topics.topics.trades_dlq);
    dlq.read_until("every bad line dead-lettered", LONG, |r| r.len() > fixable).await;
    Stage { p, fixed, fixable, _ingestor: ingestor, _aggregator: aggregator, aggregator_port }
}

async fn converges(p: &Pipeline, oracle: &Oracle, what: &str) {
    let diffs = eventually(what, LONG, || async {
        let stored = current_rows(&p.db.pool).await.ok()?;
        let diffs = compare(&stored, oracle);
        diffs.is_empty().then_some(diffs)
    })
    .await;
    assert!(diffs.is_empty());
}

/// `tradeflow dlq ARGS…` against the stage's broker and topics; stdout, asserting success.
fn dlq(s: &Stage, args: &[&str]) -> String {
    dlq_exiting(s, args, 0)
}

/// `tradeflow dlq ARGS…`; stdout, asserting the exit status (`redrive`: 2 when lines still fail).
fn dlq_exiting(s: &Stage, args: &[&str], code: i32) -> String {
    let out = Command::new(harness::tradeflow_bin())
        .arg("dlq")
        .args(args)
        .envs(s.p.env())
        .env_remove("TRADEFLOW_MAPPING")
        .output()
        .expect("tradeflow dlq");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "dlq {args:?}: {stdout}{stderr}");
    if code == 2 {
        assert!(stderr.contains("still fail"), "exit 2 says why: {stderr}");
    }
    stdout
}

fn total(stdout: &str) -> &str {
    stdout.lines().last().expect("a total line")
}

/// The fixed mapping's oracle, and `tradeflow verify --mapping FIXED` agreeing with Postgres.
async fn ends_equal_to_the_fixed_oracle(s: &Stage) {
    let oracle = Oracle::from_dir_mapped(&s.p.logs, &Mapping::load(&s.fixed).expect("fixed")).expect("oracle");
    assert_eq!(oracle.bad_lines, 1, "only the unreadable row is bad under the fix");
    converges(&s.p, &oracle, "the rows to equal the fixed mapping's oracle").await;
    let out = Command::new(harness::tradeflow_bin())
        .args(["verify", "--logs"])
        .arg(&s.p.logs)
        .arg("--mapping")
        .arg(&s.fixed)
        .env("DATABASE_URL", &s.p.db.url)
        .output()
        .expect("verify");
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn a_mapping_fix_re_driven_ends_equal_to_its_oracle_and_again_changes_nothing() {
    let s = wrong_mapping_ingested(400).await;
    let fixed = s.fixed.display().to_string();
    let n = s.fixable;
    // What is there: every bad line, by reason; one shown whole.
    let listed = dlq(&s, &["list"]);
    assert_eq!(listed.lines().count(), n + 1, "{listed}");
    assert_eq!(dlq(&s, &["list", "--reason", "bad_value", "--file", "trades_2_20261122.csv"]).lines().count(), 10);
    let first = listed.lines().next().expect("a line").split('\t').next().expect("identity").to_owned();
    let shown = dlq(&s, &["show", &first]);
    assert!(shown.contains("bad_value") && shown.contains("bytes\t"), "{shown}");
    // A dry run says what would happen and publishes nothing.
    let dry = dlq(&s, &["redrive", "--mapping", &fixed, "--dry-run"]);
    let expected =
        format!("total\tredriven={n}\theaders=0\tstill_failing=1\tnew_reasons=0\tnot_lines=0\talready_redriven=0");
    assert_eq!(total(&dry), format!("would {expected}"));
    assert_eq!(dlq(&s, &["list"]).lines().count(), n + 1, "a dry run changes nothing");
    // The re-drive.
    assert_eq!(total(&dlq_exiting(&s, &["redrive", "--mapping", &fixed], 2)), expected, "exit 2: one line still fails");
    ends_equal_to_the_fixed_oracle(&s).await;
    let left = dlq(&s, &["list"]);
    assert_eq!(left.lines().count(), 1, "only the unreadable row stays dead: {left}");
    assert_eq!(dlq(&s, &["list", "--all"]).lines().count(), n + 1);
    // Again: nothing to do.
    let again = dlq_exiting(&s, &["redrive", "--mapping", &fixed], 2);
    assert_eq!(
        total(&again),
        format!("total\tredriven=0\theaders=0\tstill_failing=1\tnew_reasons=0\tnot_lines=0\talready_redriven={n}")
    );
    // Forced to publish every line again: the aggregator drops each one as a duplicate.
    let before = http::metric(s.aggregator_port, "tradeflow_aggregator_duplicates_total").await.expect("metrics");
    let forced = dlq_exiting(&s, &["redrive", "--mapping", &fixed, "--include-redriven"], 2);
    assert!(total(&forced).starts_with(&format!("total\tredriven={n}\t")), "{forced}");
    eventually("every line published again counted as a duplicate", LONG, || async {
        let now = http::metric(s.aggregator_port, "tradeflow_aggregator_duplicates_total").await?;
        (now >= before + n as u64).then_some(())
    })
    .await;
    ends_equal_to_the_fixed_oracle(&s).await;
    // A backfill rebuilds the date from `trades` — originals, re-drives and their copies — by the
    // same rule, to the same rows.
    let out = Command::new(harness::tradeflow_bin())
        .args(["backfill", "--from", "2026-11-22"])
        .envs(s.p.env())
        .env("TRADEFLOW_BACKFILL_LEASE_SECS", "3")
        .output()
        .expect("backfill");
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    ends_equal_to_the_fixed_oracle(&s).await;
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM redriven_lines").fetch_one(&s.p.db.pool).await.expect("count");
    assert_eq!(stored, n as i64, "one stored identity per re-driven line");
    s.p.cleanup();
}

#[tokio::test]
async fn a_re_drive_killed_half_way_ends_equal_when_run_again() {
    let s = wrong_mapping_ingested(2000).await;
    let fixed = s.fixed.display().to_string();
    let n = s.fixable;
    let mut env = s.p.env();
    env.push(("TRADEFLOW_MAPPING", fixed.clone()));
    // 25 lines a second, 25 a batch: each batch published, acknowledged, then marked.
    let mut redrive = Service::start("redrive", &["dlq", "redrive", "--rate", "25"], &env, &s.p.root);
    let mut dlq_topic = TopicReader::new(&s.p.topics.kafka, &s.p.topics.topics.trades_dlq);
    dlq_topic.read_until("a first batch marked re-driven", LONG, |r| r.len() > n + 1).await;
    assert!(redrive.running(), "killed half-way, not after the end");
    redrive.kill9();
    let rerun = dlq_exiting(&s, &["redrive", "--mapping", &fixed], 2);
    let counts: Vec<u64> =
        total(&rerun).split('\t').filter_map(|kv| kv.split_once('=').and_then(|(_, v)| v.parse().ok())).collect();
    let (redriven, already) = (counts[0], counts[5]);
    assert_eq!(redriven + already, n as u64, "{rerun}");
    assert!(already >= 1 && redriven > 0, "the kill left work for the rerun: {rerun}");
    ends_equal_to_the_fixed_oracle(&s).await;
    s.p.cleanup();
}
