//! The page in a real browser: headless Chromium (Debian's `chromium` + `chromedriver`, driven over
//! WebDriver) watches a client's rows while trade lines are appended to its log file and flow
//! through the real ingestor, broker, aggregator and dashboard. Saves a screenshot.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::Utc;
use fantoccini::{ClientBuilder, Locator};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tradeflow_core::Side;
use tradeflow_core::log_format::render_line_into;
use tradeflow_core::trade::Trade;

use crate::aggregator::Pipeline;
use crate::dashboard::Dash;
use crate::harness::broker::free_port;
use crate::harness::eventually;
use crate::harness::http::{labelled, metric, request};
use crate::harness::service::Service;

const WAIT: Duration = Duration::from_secs(60);

fn append_trade(logs: &Path, client: &str, symbol: &str, side: Side, price: &str, qty: i64) {
    let now = Utc::now().naive_utc();
    let trade = Trade::from_template(now, symbol, side, price.parse::<Decimal>().expect("price"), qty, "ACC1");
    let mut line = Vec::new();
    render_line_into(&trade, &mut line);
    std::fs::create_dir_all(logs).expect("logs dir");
    let path = logs.join(format!("tradeLog_client{client}.{}.log", now.format("%Y.%m.%d")));
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("log file");
    f.write_all(&line).expect("append");
}

/// `chromedriver` on a free port, killed on drop.
struct Driver {
    child: std::process::Child,
    port: u16,
}

impl Driver {
    fn start() -> Self {
        let bin = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let port = free_port();
        let child = Command::new(&bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {bin} ({e}): install Debian's chromium and chromium-driver (scripts/test.sh does)")
            });
        Self { child, port }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_sees_a_row_change_after_a_trade_line_is_appended() {
    let p = Pipeline::new().await;
    let logs = p.logs.clone();
    append_trade(&logs, "77", "AAPL", Side::Buy, "190.25", 100);
    append_trade(&logs, "77", "MSFT", Side::Sell, "410.10", 40);
    let ingestor_port = free_port();
    let mut env = p.env();
    env.push(("TRADEFLOW_INGESTOR_METRICS_ADDR", format!("127.0.0.1:{ingestor_port}")));
    let _ingestor = Service::start("ingestor", &["ingestor"], &env, &p.root);
    let _aggregator = p.start("aggregator", free_port());
    let d = Dash::start_on(p.topics.clone(), &[], &[("DATABASE_URL", p.db.url.clone())]).await;
    let token = d.token("77");
    eventually("both rows on the dashboard", WAIT, || async {
        (d.rest("77").await["rows"].as_array().map(Vec::len) == Some(2)).then_some(())
    })
    .await;

    let driver = Driver::start();
    let caps: serde_json::Map<String, Value> = serde_json::from_value(json!({
        "goog:chromeOptions": {
            "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1500,420",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
                     "--disable-quic", format!("--user-data-dir={}", p.root.join("chromium").display())]
        }
    }))
    .expect("caps");
    let browser = eventually("chromedriver to accept a session", WAIT, || {
        let caps = caps.clone();
        let url = format!("http://127.0.0.1:{}", driver.port);
        // Two rustls providers are linked into the test binary (sqlx's ring, fantoccini's aws-lc-rs).
        let _ = rustls::crypto::ring::default_provider().install_default();
        async move { ClientBuilder::rustls().ok()?.capabilities(caps).connect(&url).await.ok() }
    })
    .await;
    browser.goto(&format!("http://127.0.0.1:{}/#client=77&token={token}", d.port)).await.expect("open page");

    let cell = |symbol: &'static str, key: &'static str| {
        let browser = browser.clone();
        async move {
            let css = format!("tbody tr[data-key$='|ACC1|{symbol}'] td[data-key='{key}']");
            let el = browser.find(Locator::Css(&css)).await.ok()?;
            Some((el.text().await.ok()?, el.attr("class").await.ok()?.unwrap_or_default()))
        }
    };
    eventually("the page to show the AAPL row", WAIT, || async {
        cell("AAPL", "trade_count").await.filter(|(t, _)| t == "1")
    })
    .await;
    let badge = browser.find(Locator::Id("badge")).await.expect("badge").text().await.expect("badge text");
    assert_eq!(badge.to_lowercase(), "live");
    assert_eq!(cell("AAPL", "net_qty").await.map(|c| c.0).as_deref(), Some("100"));
    assert_eq!(cell("MSFT", "net_qty").await.map(|c| c.0).as_deref(), Some("-40"));

    // A trade appended to the client's log file moves the row on the page, and the cell flashes.
    append_trade(&logs, "77", "AAPL", Side::Buy, "190.75", 50);
    let (_, class) = eventually("the AAPL row to show the appended trade", WAIT, || async {
        cell("AAPL", "trade_count").await.filter(|(t, _)| t == "2")
    })
    .await;
    assert!(class.contains("flash-up"), "the changed cell flashes: {class:?}");
    assert_eq!(cell("AAPL", "net_qty").await.map(|c| c.0).as_deref(), Some("150"));
    assert_eq!(cell("AAPL", "buy_notional").await.map(|c| c.0).as_deref(), Some("28,562.50"));
    let totals =
        browser.find(Locator::Css("[data-total='trade_count']")).await.expect("totals").text().await.expect("text");
    assert_eq!(totals, "3");
    // Every line the test wrote was a trade: all three published, none dead-lettered.
    eventually("the ingestor to count three published lines", WAIT, || async {
        metric(ingestor_port, "tradeflow_ingestor_lines_published_total").await.filter(|&n| n == 3)
    })
    .await;
    let dead = labelled(ingestor_port, "tradeflow_ingestor_lines_dead_lettered_total").await;
    assert_eq!(dead, Some(vec![]), "no line went to the dead-letter topic");

    let banner = browser.find(Locator::Id("auth-banner")).await.expect("banner");
    assert!(!banner.is_displayed().await.expect("banner visibility"), "no auth-off banner with auth on");

    let png = browser.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "a real screenshot ({} bytes)", png.len());
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    std::fs::write(shots.join("dashboard.png"), &png).expect("save screenshot");

    // A dashboard started with auth off says so on the page.
    let open = Dash::start(&["--auth-off"]).await;
    browser.goto(&format!("http://127.0.0.1:{}/", open.port)).await.expect("open the auth-off page");
    eventually("the auth-off banner to show", WAIT, || async {
        let banner = browser.find(Locator::Id("auth-banner")).await.ok()?;
        banner.is_displayed().await.ok()?.then_some(())
    })
    .await;
    let _ = browser.close().await;

    // REST as of now (from the Postgres snapshot tables, same token) agrees; before any trade: empty.
    let as_of = |t: String| {
        let token = token.clone();
        let port = d.port;
        async move {
            let (status, body) = request(port, &format!("/api/summary?client=77&as_of={t}&token={token}"), &[]).await?;
            (status == 200).then(|| serde_json::from_str::<Value>(&body).ok()).flatten()
        }
    };
    eventually("the snapshot tables to hold the appended trade", WAIT, || async {
        let now = Utc::now().format("%Y-%m-%dT%H:%M:%S%.fZ").to_string();
        let answer = as_of(now).await?;
        let aapl = answer["rows"].as_array()?.iter().find(|r| r["symbol"] == "AAPL")?.clone();
        (aapl["trade_count"] == 2 && answer["rows"].as_array()?.len() == 2).then_some(())
    })
    .await;
    let past = as_of("2000-01-01T00:00:00Z".into()).await.expect("as-of answer");
    assert_eq!(past["rows"].as_array().map(Vec::len), Some(0));
    let _ = std::fs::remove_dir_all(&p.root);
    let _ = std::fs::remove_dir_all(&open.root);
}
