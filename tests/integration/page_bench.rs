//! The page benchmark (not a timed test: `#[ignore]`, run by `scripts/bench-page.sh [MINUTES]`).
//! One client with 2,000 rows (40 accounts × 50 symbols) on the real dashboard, a live load of
//! `BENCH_PAGE_RATE` (1,000) row versions a second published onto its `summaries` topic (what the
//! aggregator writes), the page open on the rows view in Debian's headless Chromium. Figures come
//! from the browser's own timeline: applied row updates (the page's `handle`), the interval between
//! animation frames (`requestAnimationFrame`), the page's paint work per frame, long tasks
//! (`PerformanceObserver`), and the JS heap after a collection every 30 s (`performance.memory`).
//! The peer in the same run: the same page, same browser, idle for 15 s before the load.
//! With `BENCH_PAGE_TRACE=path` it also records a CDP trace of a loaded window
//! (`BENCH_PAGE_TRACE_SECS`, 8 s, from a third of the run or 35 s in, whichever is sooner), saves it
//! to `path` and prints where the page's main thread spent that window (`page_trace.rs`).
//! `BENCH_PAGE_INJECT=file.js` runs a script in the page before the probe (to try a change to the
//! page's functions without rebuilding the binary it is compiled into).

use std::time::{Duration, Instant};

use chrono::Utc;
use fantoccini::{Client, ClientBuilder};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tradeflow_core::ClientId;
use tradeflow_core::changelog::SummaryChange;
use tradeflow_core::summary::{Position, SummaryKey};

use crate::browser::{Driver, js};
use crate::dashboard::Dash;
use crate::harness::{TestTopics, eventually};
use crate::page_trace;

const ACCOUNTS: usize = 40;
const SYMBOLS: usize = 50;
const WAIT: Duration = Duration::from_secs(120);
const HEAP_EVERY: Duration = Duration::from_secs(30);

/// The instrumentation: a histogram of frame intervals and paint times (0.1 ms buckets to 1 s, so
/// its own memory is fixed), long tasks, and counters wrapped around the page's `handle` / `paint`.
const PROBE: &str = r#"
const b = window.__bench = { frames: new Uint32Array(10001), paints: new Uint32Array(10001), frameMax: 0, paintMax: 0,
  longTasks: 0, longMs: 0, applied: 0, deltas: 0 };
const bucket = (ms) => Math.min(10000, Math.round(ms * 10));
let last = performance.now();
const onFrame = (t) => { const d = t - last; last = t; b.frames[bucket(d)]++; b.frameMax = Math.max(b.frameMax, d); requestAnimationFrame(onFrame); };
requestAnimationFrame((t) => { last = t; requestAnimationFrame(onFrame); });
new PerformanceObserver((list) => { for (const e of list.getEntries()) { b.longTasks++; b.longMs += e.duration; } }).observe({ type: "longtask" });
const handle0 = window.handle;
window.handle = (frame) => { if (frame.type === "delta") { b.applied += frame.rows.length; b.deltas++; } handle0(frame); };
const paint0 = window.paint;
window.paint = () => { const t = performance.now(); paint0(); const d = performance.now() - t; b.paints[bucket(d)]++; b.paintMax = Math.max(b.paintMax, d); };
"#;

/// Reads and resets the probe's figures.
const TAKE: &str = r#"
const b = window.__bench;
// Sparse ([bucket, count] pairs): each answer's JSON stays in the page's heap (the WebDriver
// session keeps it; measured: 44 dense answers of 40 kB were the whole 1.5 MB "growth" of a
// 22-minute run), so it must be small for the heap figure to be the page's own.
const sparse = (h) => { const o = []; h.forEach((n, i) => { if (n) o.push([i, n]); }); return o; };
const out = { frames: sparse(b.frames), paints: sparse(b.paints), frameMax: b.frameMax, paintMax: b.paintMax,
  longTasks: b.longTasks, longMs: b.longMs, applied: b.applied, deltas: b.deltas,
  rows: document.querySelectorAll('#rows tbody tr:not(.spacer)').length };
b.frames.fill(0); b.paints.fill(0); b.frameMax = 0; b.paintMax = 0; b.longTasks = 0; b.longMs = 0; b.applied = 0; b.deltas = 0;
return out;
"#;

/// Quantile `q` of a 0.1 ms histogram, in ms.
fn quantile(hist: &[u64], q: f64) -> f64 {
    let total: u64 = hist.iter().sum();
    let want = (total as f64 * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, n) in hist.iter().enumerate() {
        seen += n;
        if seen >= want {
            return i as f64 / 10.0;
        }
    }
    f64::NAN
}

/// A histogram from the probe's sparse `[bucket, count]` pairs.
fn hist(v: &Value) -> Vec<u64> {
    let mut h = vec![0u64; 10001];
    for pair in v.as_array().expect("histogram") {
        let (i, n) = (pair[0].as_u64().unwrap_or(0) as usize, pair[1].as_u64().unwrap_or(0));
        if let Some(slot) = h.get_mut(i) {
            *slot += n;
        }
    }
    h
}

/// One window's figures as a line.
fn line(label: &str, secs: f64, taken: &Value) -> String {
    let (frames, paints) = (hist(&taken["frames"]), hist(&taken["paints"]));
    let n: u64 = frames.iter().sum();
    let slow = frames.iter().skip(175).sum::<u64>(); // ≥ 17.5 ms: a frame dropped at 60 Hz
    format!(
        "{label}: {:.0} row updates applied/s ({:.0} deltas/s), {} rows drawn; frame interval p50 {:.1} / p95 {:.1} / max {:.1} ms over {n} frames ({slow} ≥ 17.5 ms); \
         paint p50 {:.1} / p95 {:.1} / max {:.1} ms ({} paints); long tasks {} totalling {:.0} ms",
        taken["applied"].as_f64().unwrap_or(0.0) / secs,
        taken["deltas"].as_f64().unwrap_or(0.0) / secs,
        taken["rows"],
        quantile(&frames, 0.5),
        quantile(&frames, 0.95),
        taken["frameMax"].as_f64().unwrap_or(f64::NAN),
        quantile(&paints, 0.5),
        quantile(&paints, 0.95),
        taken["paintMax"].as_f64().unwrap_or(f64::NAN),
        paints.iter().sum::<u64>(),
        taken["longTasks"],
        taken["longMs"].as_f64().unwrap_or(0.0),
    )
}

async fn heap(browser: &Client) -> f64 {
    let used = js(browser, "window.gc(); return performance.memory.usedJSHeapSize").await;
    used.as_f64().expect("heap bytes") / 1e6
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn row(account: usize, symbol: usize, count: i64) -> (SummaryKey, Position) {
    let at = Utc::now().naive_utc();
    let key = SummaryKey {
        trade_date: at.date(),
        client_id: ClientId::parse("1").expect("client"),
        account_id: format!("ACC{account:02}").as_str().into(),
        symbol: format!("S{symbol:03}").as_str().into(),
    };
    let price = Decimal::new(10_000 + (count % 500), 2);
    let position = Position {
        trade_count: count,
        buy_qty: 10 * count,
        sell_qty: 3 * count,
        buy_notional: price * Decimal::from(10 * count),
        sell_notional: price * Decimal::from(3 * count),
        last_price: price,
        first_trade_at: at,
        last_trade_at: at,
    };
    (key, position)
}

/// Publishes the versions `from..to` of the round-robin over every row (version v is row
/// v % 2,000's (v / 2,000 + 1)-th), all in flight at once.
async fn publish(producer: &FutureProducer, topic: &str, from: u64, to: u64) {
    let sends = (from..to).map(|v| {
        let i = (v % (ACCOUNTS * SYMBOLS) as u64) as usize;
        let (key, position) = row(i / SYMBOLS, i % SYMBOLS, (v / (ACCOUNTS * SYMBOLS) as u64 + 1) as i64);
        let payload = SummaryChange::new(&key, &position, None, 0, v as i64).to_json();
        let k = key.kafka_key();
        async move {
            producer
                .send(FutureRecord::to(topic).key(&k).payload(&payload), Duration::from_secs(10))
                .await
                .expect("publish a row version");
        }
    });
    futures::future::join_all(sends).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "a benchmark: scripts/bench-page.sh [MINUTES]"]
async fn page_benchmark() {
    let minutes: f64 = std::env::var("BENCH_PAGE_MINUTES").ok().and_then(|m| m.parse().ok()).unwrap_or(2.0);
    let trace_path = std::env::var_os("BENCH_PAGE_TRACE").map(std::path::PathBuf::from);
    let trace_secs: f64 = std::env::var("BENCH_PAGE_TRACE_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(8.0);
    let rate: u64 = std::env::var("BENCH_PAGE_RATE").ok().and_then(|r| r.parse().ok()).unwrap_or(1000);
    println!(
        "page benchmark: {minutes} min at {rate} row versions/s into {} rows; load average at start {}",
        ACCOUNTS * SYMBOLS,
        loadavg()
    );
    let topics = TestTopics::shared().await;
    let d = Dash::start_on(topics.clone(), &[], &[("TRADEFLOW_REST_PER_MINUTE", "1000000".to_owned())]).await;
    let producer: FutureProducer = topics.kafka.client_config().set("linger.ms", "5").create().expect("producer");
    let topic = topics.topics.summaries.clone();
    let rows = (ACCOUNTS * SYMBOLS) as u64;
    publish(&producer, &topic, 0, rows).await;
    eventually("the dashboard to hold 2,000 rows", WAIT, || async {
        (d.rest("1").await["rows"].as_array().map(Vec::len) == Some(rows as usize)).then_some(())
    })
    .await;

    let driver = Driver::start();
    let profile = std::env::temp_dir().join(format!("tradeflow-bench-page-{}", std::process::id()));
    let caps: serde_json::Map<String, Value> = serde_json::from_value(json!({
        "goog:chromeOptions": {
            "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1600,900",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
                     "--enable-precise-memory-info", "--js-flags=--expose-gc", format!("--user-data-dir={}", profile.display())]
        }
    }))
    .expect("caps");
    let browser = eventually("chromedriver to accept a session", WAIT, || {
        let caps = caps.clone();
        let url = format!("http://127.0.0.1:{}", driver.port);
        let _ = rustls::crypto::ring::default_provider().install_default();
        async move { ClientBuilder::rustls().ok()?.capabilities(caps).connect(&url).await.ok() }
    })
    .await;
    browser.goto(&format!("http://127.0.0.1:{}/#client=1&token={}", d.port, d.token("1"))).await.expect("open page");
    // The view holds every row (the table draws those on screen: docs/page.md#speed).
    eventually("the page to hold 2,000 rows", WAIT, || async {
        let shown = js(&browser, "return document.getElementById('row-count').textContent").await;
        (shown.as_str() == Some(&format!("{rows} of {rows} rows"))).then_some(())
    })
    .await;
    if let Some(path) = std::env::var_os("BENCH_PAGE_INJECT") {
        let script = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("BENCH_PAGE_INJECT {}: {e}", std::path::Path::new(&path).display()));
        js(&browser, &script).await;
        println!("injected {}", std::path::Path::new(&path).display());
    }
    js(&browser, PROBE).await;
    // The browser's own CDP endpoint (chromedriver started it and says where), for the trace.
    let debugger = browser
        .capabilities()
        .and_then(|c| c.get("goog:chromeOptions")?["debuggerAddress"].as_str().map(str::to_owned));

    // The peer: the same page idle (no updates), 15 s.
    tokio::time::sleep(Duration::from_secs(15)).await; // a measured window, not a synchronisation
    let idle = js(&browser, TAKE).await;
    println!("{}", line("idle page (peer)", 15.0, &idle));
    let idle_p95 = quantile(&hist(&idle["frames"]), 0.95);

    // The load, in 10 ms steps; figures every 30 s, and the heap after a collection.
    let started = Instant::now();
    let total = Duration::from_secs_f64(minutes * 60.0);
    let mut next_take = started + HEAP_EVERY;
    let mut version = rows;
    let mut heaps = vec![(0.0, heap(&browser).await)];
    let mut sums: Vec<u64> = vec![0; 10001];
    let (mut applied, mut frame_max, mut long_tasks, mut long_ms) = (0.0, 0.0_f64, 0, 0.0);
    let mut window_start = Instant::now();
    // The trace window: a third of the run in (35 s at most: past the first figures' collection).
    let trace_from = total.div_f64(3.0).min(Duration::from_secs(35));
    let trace_to = trace_from + Duration::from_secs_f64(trace_secs);
    let mut trace: Option<page_trace::Trace> = None;
    let mut trace_wanted = trace_path.is_some();
    let mut trace_ended = false;
    let mut ticker = tokio::time::interval(Duration::from_millis(10));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while started.elapsed() < total {
        ticker.tick().await;
        let due = rows + (started.elapsed().as_secs_f64() * rate as f64) as u64;
        if due > version {
            publish(&producer, &topic, version, due).await;
            version = due;
        }
        if trace_wanted && started.elapsed() >= trace_from {
            trace_wanted = false;
            match &debugger {
                None => println!("trace: not taken: chromedriver reported no debuggerAddress"),
                Some(at) => match page_trace::start(at).await {
                    Ok(t) => {
                        println!(
                            "trace: started at t={:.0}s for {trace_secs} s (load average {})",
                            started.elapsed().as_secs_f64(),
                            loadavg()
                        );
                        trace = Some(t);
                    }
                    Err(e) => println!("trace: not taken: {e:#}"),
                },
            }
        }
        if let Some(t) = trace.as_mut().filter(|_| started.elapsed() >= trace_to && !trace_ended) {
            trace_ended = true;
            if let Err(e) = t.end().await {
                println!("trace: Tracing.end failed: {e:#}");
            }
        }
        if Instant::now() >= next_take {
            let taken = js(&browser, TAKE).await;
            let secs = window_start.elapsed().as_secs_f64();
            window_start = Instant::now();
            let at = started.elapsed().as_secs_f64();
            println!("{}", line(&format!("t={at:>5.0}s"), secs, &taken));
            for (s, n) in sums.iter_mut().zip(hist(&taken["frames"])) {
                *s += n;
            }
            applied += taken["applied"].as_f64().unwrap_or(0.0);
            frame_max = frame_max.max(taken["frameMax"].as_f64().unwrap_or(0.0));
            long_tasks += taken["longTasks"].as_u64().unwrap_or(0);
            long_ms += taken["longMs"].as_f64().unwrap_or(0.0);
            let h = heap(&browser).await;
            println!("t={at:>5.0}s: JS heap after a collection {h:.1} MB; published {} versions", version - rows);
            heaps.push((at, h));
            next_take = Instant::now() + HEAP_EVERY;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let n = heaps.len() as f64;
    let (mx, my) = (heaps.iter().map(|h| h.0).sum::<f64>() / n, heaps.iter().map(|h| h.1).sum::<f64>() / n);
    let slope = heaps.iter().map(|h| (h.0 - mx) * (h.1 - my)).sum::<f64>()
        / heaps.iter().map(|h| (h.0 - mx).powi(2)).sum::<f64>().max(f64::MIN_POSITIVE);
    let p95 = quantile(&sums, 0.95);
    println!(
        "RESULT page: published {:.0} row versions/s, applied {:.0}/s (measured windows); frame interval p50 {:.1} / p95 {:.1} / max {:.1} ms \
         (idle peer p95 {:.1} ms: {:.2}×); long tasks {} totalling {:.0} ms; JS heap {:.1} → {:.1} MB, slope {:+.3} MB/min; load average at end {}",
        (version - rows) as f64 / secs,
        applied / (heaps.last().map(|h| h.0).unwrap_or(secs).max(1.0)),
        quantile(&sums, 0.5),
        p95,
        frame_max,
        idle_p95,
        p95 / idle_p95,
        long_tasks,
        long_ms,
        heaps.first().map(|h| h.1).unwrap_or(f64::NAN),
        heaps.last().map(|h| h.1).unwrap_or(f64::NAN),
        slope * 60.0,
        loadavg(),
    );
    if let (Some(mut t), Some(path)) = (trace, &trace_path) {
        let ended = if trace_ended { Ok(()) } else { t.end().await };
        let summary = match ended {
            Ok(()) => t.finish(path).await.and_then(|events| page_trace::summary(&events)),
            Err(e) => Err(e),
        };
        match summary {
            Ok(lines) => {
                println!("trace saved to {}", path.display());
                for l in lines {
                    println!("{l}");
                }
            }
            Err(e) => println!("trace: failed: {e:#}"),
        }
    }
    // The run measured something: the page applied updates and drew frames under load.
    assert!(applied > 0.0, "the page applied no row updates");
    assert!(sums.iter().sum::<u64>() > 0, "no animation frames");
    let _ = browser.close().await;
    let _ = std::fs::remove_dir_all(&profile);
    let _ = std::fs::remove_dir_all(&d.root);
}
