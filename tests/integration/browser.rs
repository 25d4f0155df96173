//! The page in a real browser: headless Chromium (Debian's `chromium` + `chromedriver`, driven over
//! WebDriver) watches a client's rows while trade lines are appended to its log file and flow
//! through the real ingestor, broker, aggregator and dashboard. It drives every feature of the page
//! (docs/page.md): display precision and exact tooltips, the column chooser and its saved layout,
//! grouping with subtotals and the keyboard, compact mode, the CSV export (checked against
//! `/api/summary`), time travel (checked against REST `as_of`) and the badge and greyed rows while
//! the dashboard is killed and restarted, the holdings tab (checked against REST positions), the
//! charts tab (the P&L chart against `/api/series`, minute candles against `/api/bars`). Saves
//! screenshots into a temporary folder, or `docs/` with `TRADEFLOW_SCREENSHOTS=docs`.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, Timelike as _, Utc};
use fantoccini::{Client, ClientBuilder, Locator};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tradeflow_core::Side;
use tradeflow_core::log_format::render_line_into;
use tradeflow_core::trade::Trade;

use crate::aggregator::Pipeline;
use crate::dashboard::{Dash, SECRET};
use crate::harness::broker::free_port;
use crate::harness::eventually;
use crate::harness::http::{labelled, metric, request};
use crate::harness::service::Service;

const WAIT: Duration = Duration::from_secs(60);

pub(crate) async fn js(browser: &Client, script: &str) -> Value {
    browser.execute(script, vec![]).await.unwrap_or_else(|e| panic!("script {script}: {e}"))
}

/// The page's header columns, in order.
async fn header(browser: &Client) -> Vec<String> {
    let keys = js(browser, "return [...document.querySelectorAll('#rows thead th')].map(t => t.dataset.key)").await;
    serde_json::from_value(keys).expect("header keys")
}

async fn body_class(browser: &Client) -> String {
    js(browser, "return document.body.className").await.as_str().unwrap_or_default().to_owned()
}

async fn press(browser: &Client, key: &str) {
    js(browser, &format!("document.dispatchEvent(new KeyboardEvent('keydown', {{ key: '{key}', bubbles: true }}))"))
        .await;
}

async fn click(browser: &Client, css: &str) {
    browser.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}")).click().await.expect("click");
}

/// Saves a screenshot: into `docs/` (the README and docs/page.md show them) when
/// `TRADEFLOW_SCREENSHOTS=docs`, else into a temporary folder, so a test run leaves the tree clean.
async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "a real screenshot ({} bytes)", png.len());
    let dir = if std::env::var("TRADEFLOW_SCREENSHOTS").as_deref() == Ok("docs") {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs")
    } else {
        std::env::temp_dir().join("tradeflow-screenshots")
    };
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    std::fs::write(dir.join(name), &png).expect("save screenshot");
}

/// A cell's text, title and class in one of the holdings table's lines (`data-key` of the line).
async fn holding_cell(browser: &Client, line: &str, key: &str) -> Option<(String, String, String)> {
    let el = browser.find(Locator::Css(&format!("#holdings tr[data-key='{line}'] td[data-key='{key}']"))).await.ok()?;
    let title = el.attr("title").await.ok()?.unwrap_or_default();
    Some((el.text().await.ok()?, title, el.attr("class").await.ok()?.unwrap_or_default()))
}

/// Σ of a decimal field over holdings, `None` when one lacks it (the page shows "—" then).
fn holdings_sum(holdings: &[Value], field: &str) -> Option<Decimal> {
    holdings.iter().map(|h| h[field].as_str()?.parse::<Decimal>().ok()).sum()
}

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
pub(crate) struct Driver {
    child: std::process::Child,
    pub(crate) port: u16,
}

impl Driver {
    pub(crate) fn start() -> Self {
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
    // The test polls REST every 20 ms while it waits: above the default 120 requests a minute.
    let rest_limit = ("TRADEFLOW_REST_PER_MINUTE", "1000000".to_owned());
    let mut d = Dash::start_on(p.topics.clone(), &[], &[("DATABASE_URL", p.db.url.clone()), rest_limit.clone()]).await;
    let token = d.token("77");
    eventually("both rows on the dashboard", WAIT, || async {
        (d.rest("77").await["rows"].as_array().map(Vec::len) == Some(2)).then_some(())
    })
    .await;
    // REST as of a time (from the Postgres snapshot tables, same token).
    let dash_port = d.port;
    let as_of = |t: DateTime<Utc>| {
        let token = token.clone();
        let port = dash_port;
        async move {
            let t = t.format("%Y-%m-%dT%H:%M:%S%.fZ");
            let (status, body) = request(port, &format!("/api/summary?client=77&as_of={t}&token={token}"), &[]).await?;
            (status == 200).then(|| serde_json::from_str::<Value>(&body).ok()).flatten()
        }
    };
    let count_at = |answer: &Value, symbol: &str| {
        answer["rows"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["symbol"] == symbol))
            .map(|r| r["trade_count"].clone())
    };
    // A moment after the first two trades reached the snapshot tables and before the third: the
    // page's time travel goes back to it at the end.
    eventually("the snapshot tables to hold the first two trades", WAIT, || async {
        let answer = as_of(Utc::now()).await?;
        (count_at(&answer, "AAPL")? == 1 && answer["rows"].as_array()?.len() == 2).then_some(())
    })
    .await;
    let past = (Utc::now() + chrono::Duration::seconds(1)).with_nanosecond(0).expect("whole second");
    eventually("the clock to pass the chosen past moment", WAIT, || async { (Utc::now() > past).then_some(()) }).await;

    let driver = Driver::start();
    let downloads = p.root.join("downloads");
    let caps: serde_json::Map<String, Value> = serde_json::from_value(json!({
        "goog:chromeOptions": {
            "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1600,560",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
                     "--disable-quic", format!("--user-data-dir={}", p.root.join("chromium").display())],
            "prefs": { "download.default_directory": downloads.display().to_string(), "download.prompt_for_download": false }
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
    let page = format!("http://127.0.0.1:{}/#client=77&token={token}", d.port);
    browser.goto(&page).await.expect("open page");

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
    assert_eq!(
        cell("AAPL", "age").await.map(|c| c.0.ends_with('s') || c.0.ends_with('m')),
        Some(true),
        "a per-row age"
    );

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
    // A total over rows without a mark is unknown ("—", the tooltip says how many), never a partial sum.
    let live = d.rest("77").await;
    let unmarked = live["rows"].as_array().expect("rows").iter().filter(|r| r["total_pnl"].is_null()).count();
    let pnl_total = browser.find(Locator::Css("[data-total='total_pnl']")).await.expect("P&L total");
    let pnl_text = pnl_total.text().await.expect("text");
    if unmarked > 0 {
        assert_eq!(pnl_text, "—", "a P&L total over {unmarked} unmarked rows");
        let title = pnl_total.attr("title").await.expect("title").unwrap_or_default();
        assert!(title.contains(&format!("{unmarked} row")), "the tooltip counts the unmarked rows: {title:?}");
    } else {
        assert_ne!(pnl_text, "—", "every row has a total P&L, so the total is known");
    }
    // Display precision: prices to at most 4 decimals, the exact value in the tooltip.
    let live = d.rest("77").await;
    let aapl = live["rows"].as_array().and_then(|r| r.iter().find(|r| r["symbol"] == "AAPL")).cloned().expect("AAPL");
    let avg =
        browser.find(Locator::Css("tbody tr[data-key$='|ACC1|AAPL'] td[data-key='avg_buy_price']")).await.expect("avg");
    assert_eq!(avg.text().await.expect("text"), "190.4167", "28,562.50 / 150 shown to 4 decimals");
    assert_eq!(
        avg.attr("title").await.expect("title").as_deref(),
        aapl["avg_buy_price"].as_str(),
        "exact in the tooltip"
    );
    // Every line the test wrote was a trade: all three published, none dead-lettered.
    eventually("the ingestor to count three published lines", WAIT, || async {
        metric(ingestor_port, "tradeflow_ingestor_lines_published_total").await.filter(|&n| n == 3)
    })
    .await;
    let dead = labelled(ingestor_port, "tradeflow_ingestor_lines_dead_lettered_total").await;
    assert_eq!(dead, Some(vec![]), "no line went to the dead-letter topic");
    let banner = browser.find(Locator::Id("auth-banner")).await.expect("banner");
    assert!(!banner.is_displayed().await.expect("banner visibility"), "no auth-off banner with auth on");

    // Columns: hide one and move another; the layout survives a reload; then restore both.
    let default_header = header(&browser).await;
    assert_eq!(&default_header[..3], ["trade_date", "account_id", "symbol"]);
    click(&browser, "#columns summary").await;
    click(&browser, "#col-sell_qty").await;
    click(&browser, "li[data-col='symbol'] button.up").await;
    let chosen = header(&browser).await;
    assert_eq!(&chosen[..3], ["trade_date", "symbol", "account_id"]);
    assert!(!chosen.contains(&"sell_qty".to_owned()), "sell_qty hidden: {chosen:?}");
    browser.refresh().await.expect("reload");
    eventually("the reloaded page to show the AAPL row", WAIT, || async {
        cell("AAPL", "trade_count").await.filter(|(t, _)| t == "2")
    })
    .await;
    assert_eq!(header(&browser).await, chosen, "the layout is saved per browser");
    assert_eq!(cell("AAPL", "sell_qty").await, None);
    click(&browser, "#columns summary").await;
    click(&browser, "#col-sell_qty").await;
    click(&browser, "li[data-col='symbol'] button.down").await;
    click(&browser, "#columns summary").await;
    assert_eq!(header(&browser).await, default_header, "restored");

    // Grouping by account: a subtotal row, closed; opened by a click; the keyboard moves and closes.
    browser.find(Locator::Id("group-by")).await.expect("group-by").select_by_value("account_id").await.expect("group");
    let group = "tbody tr.group[data-key='group:account_id:ACC1']";
    let subtotal = eventually("the ACC1 subtotal row", WAIT, || async {
        let td = browser.find(Locator::Css(&format!("{group} td[data-key='trade_count']"))).await.ok()?;
        td.text().await.ok().filter(|t| t == "3")
    })
    .await;
    assert_eq!(subtotal, "3");
    assert_eq!(cell("AAPL", "trade_count").await, None, "a closed group hides its rows");
    click(&browser, group).await;
    eventually("the opened group's rows", WAIT, || async {
        cell("AAPL", "trade_count").await.filter(|(t, _)| t == "2")
    })
    .await;
    let expanded = browser.find(Locator::Css(group)).await.expect("group").attr("aria-expanded").await.expect("attr");
    assert_eq!(expanded.as_deref(), Some("true"));
    screenshot(&browser, "page-grouped.png").await;
    let selected = || async {
        js(&browser, "const s = document.querySelector('tbody tr.selected'); return s ? s.dataset.key : null").await
    };
    press(&browser, "ArrowDown").await;
    let key = selected().await;
    assert!(key.as_str().is_some_and(|k| k.ends_with("|ACC1|AAPL")), "↓ selects the group's first row: {key}");
    press(&browser, "ArrowLeft").await;
    assert_eq!(selected().await, json!("group:account_id:ACC1"), "← goes to the row's group");
    press(&browser, "ArrowLeft").await;
    eventually("← to close the group", WAIT, || async { cell("AAPL", "trade_count").await.is_none().then_some(()) })
        .await;
    // Compact mode.
    click(&browser, "#compact").await;
    assert!(body_class(&browser).await.contains("compact"));
    click(&browser, "#compact").await;
    assert!(!body_class(&browser).await.contains("compact"));
    browser.find(Locator::Id("group-by")).await.expect("group-by").select_by_value("").await.expect("ungroup");
    eventually("the ungrouped rows", WAIT, || async { cell("AAPL", "trade_count").await.filter(|(t, _)| t == "2") })
        .await;

    // Export: the CSV holds exactly the view's rows, exact values, and a total; checked against REST.
    click(&browser, "#export").await;
    let exported = browser
        .execute_async(
            "const done = arguments[arguments.length - 1]; const a = document.getElementById('export');
             fetch(a.href).then(r => r.text()).then(t => done([a.download, t]));",
            vec![],
        )
        .await
        .expect("read the export");
    let name = exported[0].as_str().expect("file name");
    assert!(name.starts_with("tradeflow_client-77_live-") && name.ends_with(".csv"), "{name}");
    let csv: Vec<Vec<&str>> =
        exported[1].as_str().expect("csv").lines().map(|l| l.split(',').collect::<Vec<_>>()).collect();
    let col = |label: &str| csv[0].iter().position(|h| *h == label).unwrap_or_else(|| panic!("column {label}"));
    let live = d.rest("77").await;
    let rest_rows = live["rows"].as_array().expect("rows");
    let csv_rows: Vec<&Vec<&str>> = csv.iter().filter(|l| l[0] == "row").collect();
    assert_eq!(csv_rows.len(), rest_rows.len(), "one CSV row per row: {csv:?}");
    for r in rest_rows {
        let line = csv_rows.iter().find(|l| l[col("Symbol")] == r["symbol"]).expect("the row in the CSV");
        for (label, field) in [
            ("Trades", "trade_count"),
            ("Buy notional", "buy_notional"),
            ("Avg buy", "avg_buy_price"),
            ("Net qty", "net_qty"),
        ] {
            let want = match &r[field] {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                v => v.to_string(),
            };
            assert_eq!(line[col(label)], want, "{label} of {} is exact", r["symbol"]);
        }
    }
    let total = csv.iter().find(|l| l[0] == "total").expect("a total line");
    assert_eq!(total[col("Trades")], "3");

    // Time travel: the slider at the past moment shows the board then (REST as_of agrees), then Live.
    let seconds = past.num_seconds_from_midnight();
    js(
        &browser,
        &format!(
            "document.getElementById('as-of-date').value = '{}'; const s = document.getElementById('as-of-slider');
         s.value = '{seconds}'; s.dispatchEvent(new Event('input'));",
            past.format("%Y-%m-%d")
        ),
    )
    .await;
    eventually("the page to show the board as of the past moment", WAIT, || async {
        let history = body_class(&browser).await.contains("history");
        (history && cell("AAPL", "trade_count").await?.0 == "1").then_some(())
    })
    .await;
    let marked = browser.find(Locator::Id("history-at")).await.expect("history label").text().await.expect("text");
    assert_eq!(marked, format!("{} UTC", past.format("%Y-%m-%d %H:%M:%S")), "clearly marked as history");
    let then = as_of(past).await.expect("as-of answer");
    assert_eq!(count_at(&then, "AAPL"), Some(json!(1)), "REST as_of agrees with the page");
    screenshot(&browser, "page-history.png").await;
    // Clearing the date throws nothing (window errors are collected) and goes back to the live board.
    js(
        &browser,
        "window.pageErrors = []; addEventListener('error', (e) => window.pageErrors.push(String(e.message)));
         const d = document.getElementById('as-of-date'); d.value = ''; d.dispatchEvent(new Event('change'));
         d.value = ''; document.getElementById('as-of-slider').dispatchEvent(new Event('input'));",
    )
    .await;
    eventually("a cleared date to go live", WAIT, || async {
        (!body_class(&browser).await.contains("history")).then_some(())
    })
    .await;
    assert_eq!(js(&browser, "return window.pageErrors").await, json!([]), "no exception on a cleared date");
    click(&browser, "#live").await;
    eventually("Live to show the live board again", WAIT, || async {
        let history = body_class(&browser).await.contains("history");
        (!history && cell("AAPL", "trade_count").await?.0 == "2").then_some(())
    })
    .await;
    screenshot(&browser, "page-live.png").await;

    // Holdings: marks for both symbols, then the holdings tab agrees with REST positions to the
    // digit — each holding, the account's subtotal, the overall total — with P&L coloured by sign.
    d.tick("AAPL", "191.50").await;
    d.tick("MSFT", "409.00").await;
    let positions = eventually("REST positions with both marks", WAIT, || async {
        let positions = d.rest("77").await["positions"].as_array()?.clone();
        (positions.len() == 2 && positions.iter().all(|h| h["total_pnl"].is_string())).then_some(positions)
    })
    .await;
    click(&browser, "nav.tabs button[data-tab='holdings']").await;
    for h in &positions {
        let line = format!("ACC1|{}", h["symbol"].as_str().expect("symbol"));
        let want = h["total_pnl"].as_str().expect("total P&L").to_owned();
        let (_, title, class) = eventually(&format!("the {line} holding's P&L"), WAIT, || async {
            holding_cell(&browser, &line, "total_pnl").await.filter(|c| c.1 == want)
        })
        .await;
        let pnl: Decimal = title.parse().expect("P&L");
        let colour = if pnl > Decimal::ZERO {
            "pos"
        } else if pnl < Decimal::ZERO {
            "neg"
        } else {
            ""
        };
        assert!(
            colour.is_empty() || class.split(' ').any(|c| c == colour),
            "{line} P&L {pnl} coloured {colour}: {class:?}"
        );
        let (position, _, _) = holding_cell(&browser, &line, "position").await.expect("position");
        assert_eq!(position, h["position"].to_string(), "{line} position");
        let (_, avg, _) = holding_cell(&browser, &line, "avg_cost").await.expect("avg cost");
        assert_eq!(Some(avg.as_str()), h["avg_cost"].as_str(), "{line} average cost, exact in the tooltip");
    }
    for field in ["market_value", "realized_pnl", "unrealized_pnl", "total_pnl"] {
        let want = holdings_sum(&positions, field).expect("every holding marked").normalize();
        let (_, sub, _) = holding_cell(&browser, "account:ACC1", field).await.expect("ACC1 subtotal");
        assert_eq!(sub.parse::<Decimal>().expect("subtotal").normalize(), want, "ACC1 subtotal of {field}");
        let total =
            js(&browser, &format!("return document.querySelector('#holdings-total td[data-key=\"{field}\"]').title"))
                .await;
        let total: Decimal = total.as_str().expect("total").parse().expect("total decimal");
        assert_eq!(total.normalize(), want, "overall total of {field}");
    }
    let net: i64 = positions.iter().map(|h| h["position"].as_i64().expect("position")).sum();
    let (shown, _, _) = holding_cell(&browser, "account:ACC1", "position").await.expect("ACC1 position");
    assert_eq!(shown, net.to_string());
    screenshot(&browser, "page-holdings.png").await;

    // Charts: GET /api/series (token-checked and bounded like /api/summary), drawn point for point.
    let series_path = |query: &str| format!("/api/series?client=77{query}");
    let refused = request(d.port, &series_path(""), &[]).await.expect("series without a token");
    assert_eq!(refused.0, 401, "a token is required: {refused:?}");
    let other = request(d.port, &series_path(&format!("&token={}", d.token("78"))), &[]).await.expect("other client");
    assert_eq!(other.0, 403, "another client's token: {other:?}");
    let bad = request(d.port, &series_path(&format!("&step_secs=5&token={token}")), &[]).await.expect("a bad step");
    assert_eq!(bad.0, 400, "a step under 10 s: {bad:?}");
    assert!(bad.1.contains("step_secs"), "the error names the parameter: {}", bad.1);
    let series = || async {
        let (status, body) = request(d.port, &series_path(&format!("&token={token}")), &[]).await?;
        (status == 200).then(|| serde_json::from_str::<Value>(&body).ok()).flatten()
    };
    // The snapshot tables' last point holds today's net quantity: 150 AAPL − 40 MSFT.
    eventually("the series to reach the rows' net quantity", WAIT, || async {
        let answer = series().await?;
        let points = answer["points"].as_array()?;
        let ascending = points.windows(2).all(|w| w[0]["at"].as_str() < w[1]["at"].as_str());
        (ascending && points.last()?["net_qty"] == "110").then_some(())
    })
    .await;
    click(&browser, "nav.tabs button[data-tab='charts']").await;
    eventually("the P&L chart to draw every /api/series point", WAIT, || async {
        let want = series().await?["points"].as_array()?.len();
        let page = js(
            &browser,
            "const c = window.tradeflowCharts; if (!c || !c.pnl) return null;
             return [c.restPoints, c.positionLine.data().length - c.livePoints, document.querySelectorAll('#pnl-chart canvas').length];",
        )
        .await;
        if page[0].as_u64() != Some(want as u64) {
            // A snapshot landed between the page's fetch and the test's: the page fetches again.
            js(&browser, "loadSeries()").await;
            return None;
        }
        (page[1].as_u64() == Some(want as u64) && page[2].as_u64() > Some(0)).then_some(())
    })
    .await;
    // Minute candles: with /api/bars (branch bars) the chart holds the REST bars; without it the
    // page says why instead of drawing nothing silently.
    let bars = || async {
        let (status, body) = request(d.port, &format!("/api/bars?symbol=AAPL&token={token}"), &[]).await?;
        let bars = serde_json::from_str::<Value>(&body).ok().and_then(|b| b["bars"].as_array().map(Vec::len));
        Some((status, bars, body))
    };
    let (status, _, body) = eventually("/api/bars to answer with AAPL's ticks, or to be absent", WAIT, || async {
        bars().await.filter(|(status, n, _)| *status != 200 || n.is_some_and(|n| n > 0))
    })
    .await;
    js(
        &browser,
        "const s = document.getElementById('chart-symbol'); s.value = 'AAPL'; s.dispatchEvent(new Event('change'));",
    )
    .await;
    if status == 200 {
        eventually("the candle chart to hold AAPL's bars", WAIT, || async {
            let want = bars().await?.1?;
            let page = js(
                &browser,
                "return [window.tradeflowCharts.barCount, document.querySelectorAll('#candle-chart canvas').length]",
            )
            .await;
            (page[0].as_u64() == Some(want as u64) && page[1].as_u64() > Some(0)).then_some(())
        })
        .await;
    } else {
        let status = status.to_string();
        eventually(&format!("the candle chart to say why it is empty ({body})"), WAIT, || async {
            let note = browser.find(Locator::Id("candle-note")).await.ok()?.text().await.ok()?;
            note.contains(&status).then_some(())
        })
        .await;
    }
    browser.set_window_size(1600, 900).await.expect("a taller window for both charts");
    screenshot(&browser, "page-charts.png").await;
    browser.set_window_size(1600, 560).await.expect("the window back");
    click(&browser, "nav.tabs button[data-tab='rows']").await;

    // The dashboard's upstream feed down (its `feed` frame, handed to the page's frame handler; the
    // frame itself is tested against a killed broker in feed_health.rs): stale, greyed; up: live.
    js(&browser, "handle({type: 'feed', state: 'down', since: '2026-12-01T12:03:04.000Z', reason: 'all_brokers_down', upstream: 'summaries'})").await;
    let badge = browser.find(Locator::Id("badge")).await.expect("badge");
    let (text, class) =
        (badge.text().await.expect("text"), badge.attr("class").await.expect("class").unwrap_or_default());
    assert!(text.to_lowercase().starts_with("stale · feed down since ") && class.contains("stale"), "{text} / {class}");
    let opacity = js(&browser, "return getComputedStyle(document.querySelector('#rows tbody')).opacity").await;
    assert_eq!(opacity, json!("0.45"), "rows greyed while the feed is down");
    js(&browser, "handle({type: 'feed', state: 'up'})").await;
    assert_eq!(badge.text().await.expect("text").to_lowercase(), "live");
    assert!(!body_class(&browser).await.contains("feed-down"));

    // The dashboard killed: the badge turns red and the rows grey, the retry counts down; restarted: live again.
    d.service.kill9();
    eventually("the badge to say disconnected", WAIT, || async {
        let badge = browser.find(Locator::Id("badge")).await.ok()?;
        let (text, class) = (badge.text().await.ok()?, badge.attr("class").await.ok()??);
        (text.to_lowercase().contains("disconnected") && class.contains("offline")).then_some(())
    })
    .await;
    // Reconnects back off to at most 5 s (4 s ± 25 %), and "retry now" is offered meanwhile.
    eventually("a retry at most 5 s away, with a retry-now button", WAIT, || async {
        let text = browser.find(Locator::Id("badge")).await.ok()?.text().await.ok()?.to_lowercase();
        let secs: u64 = text.rsplit("retry in ").next()?.trim_end_matches('s').parse().ok()?;
        let shown = browser.find(Locator::Id("retry-now")).await.ok()?.is_displayed().await.ok()?;
        assert!(secs <= 5, "{text}");
        shown.then_some(())
    })
    .await;
    assert!(body_class(&browser).await.contains("offline"));
    let opacity = js(&browser, "return getComputedStyle(document.querySelector('#rows tbody')).opacity").await;
    assert_eq!(opacity, json!("0.45"), "rows greyed while disconnected");
    eventually("the holdings greyed while their socket is down", WAIT, || async {
        let opacity = js(&browser, "return getComputedStyle(document.querySelector('#holdings tbody')).opacity").await;
        (opacity == json!("0.45")).then_some(())
    })
    .await;
    screenshot(&browser, "page-disconnected.png").await;
    let listen = format!("127.0.0.1:{}", d.port);
    let envs = [
        ("KAFKA_BROKERS", d.topics.kafka.brokers.clone()),
        ("TRADEFLOW_TOPIC_PREFIX", d.topics.prefix.clone()),
        ("TRADEFLOW_AUTH_SECRET", SECRET.to_owned()),
        ("DATABASE_URL", p.db.url.clone()),
        ("RUST_LOG", "info".to_owned()),
        rest_limit,
    ];
    d.service = Service::start("dashboard", &["dashboard", "--listen", &listen], &envs, &d.root);
    eventually("the page to reconnect to the restarted dashboard", WAIT, || async {
        let badge = browser.find(Locator::Id("badge")).await.ok()?.text().await.ok()?;
        let offline = body_class(&browser).await.contains("offline");
        (badge.to_lowercase() == "live" && !offline && cell("AAPL", "trade_count").await?.0 == "2").then_some(())
    })
    .await;

    // A row that changes while filtered out flashes when it comes into view: the page clears the
    // filter as soon as it has applied the delta (its seq moved), the row re-enters and flashes.
    js(
        &browser,
        "const f = document.getElementById('f-symbol'); f.value = 'MSFT'; f.dispatchEvent(new Event('input'));
                  const seq = document.getElementById('seq'), before = seq.textContent;
                  const t = setInterval(() => { if (seq.textContent !== before) { clearInterval(t);
                    f.value = ''; f.dispatchEvent(new Event('input')); } }, 5);",
    )
    .await;
    eventually("the filter to hide AAPL", WAIT, || async { cell("AAPL", "trade_count").await.is_none().then_some(()) })
        .await;
    append_trade(&logs, "77", "AAPL", Side::Buy, "191.00", 10);
    let (_, class) = eventually("AAPL back in view with the new trade", WAIT, || async {
        cell("AAPL", "trade_count").await.filter(|(t, _)| t == "3")
    })
    .await;
    assert!(class.contains("flash-up"), "a row coming into view flashes what changed: {class:?}");

    // A dashboard started with auth off says so on the page.
    let open = Dash::start(&["--auth-off"]).await;
    browser.goto(&format!("http://127.0.0.1:{}/", open.port)).await.expect("open the auth-off page");
    eventually("the auth-off banner to show", WAIT, || async {
        let banner = browser.find(Locator::Id("auth-banner")).await.ok()?;
        banner.is_displayed().await.ok()?.then_some(())
    })
    .await;
    let _ = browser.close().await;

    // Before any trade: no rows as of then.
    let before = as_of("2000-01-01T00:00:00Z".parse().expect("time")).await.expect("as-of answer");
    assert_eq!(before["rows"].as_array().map(Vec::len), Some(0));
    let _ = std::fs::remove_dir_all(&p.root);
    let _ = std::fs::remove_dir_all(&open.root);
}
