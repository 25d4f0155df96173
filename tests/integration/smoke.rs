//! The README's first command, natively: `scripts/dev.sh` brings up broker, Postgres, topics and
//! every service; rows reach Postgres, a live frame reaches a websocket subscriber, and Ctrl-C
//! stops everything.

use std::io::{BufRead as _, BufReader};
use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::harness::broker::free_port;
use crate::harness::ws::WsClient;
use crate::harness::{self, eventually};

const WAIT: Duration = Duration::from_secs(120);

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

/// If the test fails: shows what dev.sh printed and the tail of every service's log, then stops the
/// script's process group and its children (the services and the broker each run in a session of
/// their own) so nothing outlives the test.
struct OnFailure {
    pid: u32,
    state: std::path::PathBuf,
    output: Arc<Mutex<String>>,
}

impl Drop for OnFailure {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        eprintln!("--- dev.sh stderr ---\n{}", self.output.lock().unwrap_or_else(|e| e.into_inner()));
        let logs = std::fs::read_dir(&self.state).into_iter().flatten().flatten().map(|e| e.path());
        for path in logs.filter(|p| p.extension().is_some_and(|e| e == "log")) {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(60).collect();
            eprintln!("--- {} (last {} lines) ---", path.display(), tail.len());
            tail.iter().rev().for_each(|l| eprintln!("{l}"));
        }
        let broker_log = self.state.join("broker/kafka.log");
        let text = std::fs::read_to_string(&broker_log).unwrap_or_default();
        let warnings: Vec<&str> = text.lines().filter(|l| l.contains(" WARN ") || l.contains(" ERROR ")).collect();
        eprintln!("--- {}: its last 30 WARN/ERROR lines ---", broker_log.display());
        warnings.iter().skip(warnings.len().saturating_sub(30)).for_each(|l| eprintln!("{l}"));
        // The services and the broker run in sessions of their own (setsid): not in the group.
        for (p, _) in children_of(self.pid) {
            let _ = Command::new("kill").args(["-s", "KILL", &p.to_string()]).status();
        }
        let _ = Command::new("kill").args(["-s", "KILL", "--", &format!("-{}", self.pid)]).status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_script_runs_the_pipeline_and_stops_on_ctrl_c() {
    let state = harness::temp_dir();
    let (kafka_port, dashboard_port) = (free_port(), free_port());
    let db = harness::unique("tradeflow_smoke_");
    let server = harness::postgres::server_url();
    // As from a terminal: SIGINT at its default disposition (a test run started in the background of
    // a non-interactive shell inherits it ignored, and bash cannot trap a signal ignored on entry).
    let mut child = Command::new("env")
        .args(["--default-signal=INT", "bash", concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/dev.sh")])
        .env("KAFKA_PORT", kafka_port.to_string())
        .env("DASHBOARD_PORT", dashboard_port.to_string())
        .env("TRADEFLOW_STATE", &state)
        .env("TRADEFLOW_DEV_DB", &db)
        .env("TRADEFLOW_BIN", harness::tradeflow_bin())
        .env("DATABASE_URL", &server)
        .env("TRADEFLOW_INGESTOR_METRICS_ADDR", "127.0.0.1:0")
        .env("TRADEFLOW_AGGREGATOR_METRICS_ADDR", "127.0.0.1:0")
        .env("TRADE_LOG_CID", "1,2")
        .env_remove("TRADEFLOW_TOPIC_PREFIX")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0) // its own group, like a terminal job
        .spawn()
        .expect("start scripts/dev.sh");
    let pid = child.id();
    let output = Arc::new(Mutex::new(String::new()));
    let stderr = child.stderr.take().expect("stderr");
    let sink = output.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut out = sink.lock().unwrap_or_else(|e| e.into_inner());
            out.push_str(&line);
            out.push('\n');
        }
    });
    let text = || output.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let _on_failure = OnFailure { pid, state: state.clone(), output: output.clone() };

    // The banner: the dashboard URL, a link with a token per client, the read-only psql line.
    let banner = eventually("dev.sh to print its banner", WAIT, || {
        let t = text();
        async move { t.contains("Ctrl-C stops everything").then_some(t) }
    })
    .await;
    assert!(banner.contains(&format!("dashboard   http://127.0.0.1:{dashboard_port}/")), "{banner}");
    assert!(banner.contains("tradeflow_reader@"), "{banner}");
    let token = banner
        .lines()
        .find_map(|l| l.trim().strip_prefix("client 1").and_then(|rest| rest.split("&token=").nth(1)))
        .map(|t| t.trim().to_owned())
        .unwrap_or_else(|| panic!("no link for client 1 in {banner}"));

    // Rows in Postgres, readable by the read-only role.
    let reader_url = format!("{}/{db}", server.rsplit_once('/').map(|(b, _)| b).unwrap_or(&server)).replacen(
        "://postgres@",
        "://tradeflow_reader@",
        1,
    );
    eventually("rows in summary_rows", WAIT, || {
        let url = reader_url.clone();
        let exited = child.try_wait().ok().flatten();
        async move {
            assert!(exited.is_none(), "dev.sh exited before rows reached Postgres: {exited:?}");
            let pool = sqlx::PgPool::connect(&url).await.ok()?;
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM summary_rows").fetch_one(&pool).await.ok()?;
            pool.close().await;
            (n > 0).then_some(())
        }
    })
    .await;

    // A live frame on the websocket: a delta after the snapshot.
    let mut ws = eventually("the dashboard websocket", WAIT, || {
        let token = token.clone();
        async move { WsClient::connect(dashboard_port, Some(&token), None).await.ok() }
    })
    .await;
    ws.send(json!({"op": "subscribe", "client": "1"})).await;
    ws.expect("snapshot", WAIT).await;
    let delta = ws.expect("delta", WAIT).await;
    assert!(
        delta["rows"].as_array().is_some_and(|r| !r.is_empty() && r.iter().all(|r| r["client_id"] == "1")),
        "{delta}"
    );
    drop(ws);

    // A service stopped from outside — SIGTERM, so it exits 0 — is restarted: only the script sees
    // a terminal's Ctrl-C (the services run in their own sessions), so a clean exit is not a stop.
    let first = service_of(pid, "ingestor").unwrap_or_else(|| panic!("no ingestor under dev.sh: {}", text()));
    let _ = Command::new("kill").args(["-s", "TERM", &first.to_string()]).status();
    eventually("dev.sh to restart the ingestor stopped from outside", WAIT, || {
        let (t, exited) = (text(), child.try_wait().ok().flatten());
        async move {
            assert!(exited.is_none(), "dev.sh ended when one service was stopped: {exited:?}\n{t}");
            let again = service_of(pid, "ingestor").filter(|&p| p != first);
            (t.contains("ingestor exited (status 0") && again.is_some()).then_some(())
        }
    })
    .await;

    // Ctrl-C: everything stops (the services get SIGTERM, flush and exit; the broker goes away).
    // The signal goes to the script, whose trap stops the services: a terminal's Ctrl-C also hits
    // the services directly, which races the script's own `wait` (same outcome, less determinism).
    let _ = Command::new("kill").args(["-s", "INT", &pid.to_string()]).status();
    let status = eventually("dev.sh to exit", WAIT, || {
        let s = child.try_wait().ok().flatten();
        async move { s }
    })
    .await;
    assert_eq!(status.code(), Some(130), "{}", text());
    eventually("the broker and dashboard ports to close", Duration::from_secs(30), || async {
        (!port_open(kafka_port) && !port_open(dashboard_port)).then_some(())
    })
    .await;
    let log = text();
    assert!(log.contains("stopping"), "{log}");
    let drop_db = sqlx::PgPool::connect(&server).await.expect("server");
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).execute(&drop_db).await;
    let _ = std::fs::remove_dir_all(&state);
}

/// The pid of dev.sh's child running `tradeflow <service>` (its parent is the script: the
/// services are started in place of `setsid`, which does not fork).
fn service_of(script: u32, service: &str) -> Option<u32> {
    children_of(script).into_iter().find_map(|(pid, args)| (args.get(1) == Some(&service.to_owned())).then_some(pid))
}

/// The processes whose parent is `script`, with their arguments.
fn children_of(script: u32) -> Vec<(u32, Vec<String>)> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let parent: u32 = stat.rsplit_once(") ")?.1.split_whitespace().nth(1)?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let args = cmdline.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
            (parent == script).then_some((pid, args))
        })
        .collect()
}
