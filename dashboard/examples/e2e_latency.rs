//! End-to-end latency benchmark client (run by `scripts/bench-latency.sh`): appends trade lines to
//! client log files at a fixed rate and measures, for every trade and every websocket subscriber,
//! the time from the line's append to the first dashboard frame showing it (the row's
//! `trade_count` reaching that trade). Prints p50 / p99 / max and the frames delivered per second.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use clap::Parser;
use futures::{SinkExt as _, StreamExt as _};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tradeflow_core::Side;
use tradeflow_core::log_format::render_line_into;
use tradeflow_core::trade::Trade;

#[derive(Parser, Debug)]
struct Args {
    /// The ingestor's log directory.
    #[arg(long)]
    logs: PathBuf,
    /// The dashboard's websocket URL (auth off).
    #[arg(long)]
    ws: String,
    /// Trades per second, all clients together.
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// Seconds of measured load.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Clients (one log file each); rows = clients × symbols.
    #[arg(long, default_value_t = 10)]
    clients: usize,
    /// Websocket subscribers, spread evenly over the clients.
    #[arg(long, default_value_t = 10)]
    subscribers: usize,
    /// Symbols per client.
    #[arg(long, default_value_t = 5)]
    symbols: usize,
    /// Label printed with the results.
    #[arg(long, default_value = "")]
    label: String,
    /// Also print p50 / p99 / max and frames/s per window of this many seconds of load (by the
    /// time a trade was appended; 0: only the whole run) — the soak benchmark uses 60.
    #[arg(long, default_value_t = 0)]
    window_secs: u64,
    /// Also write every (trade, subscriber) sample to this file, one `APPEND_MS LATENCY_MS` line
    /// each (the append in ms since the load began), after a `# load_started_unix_ms N` line — the
    /// recovery benchmark computes its sliding spans from it.
    #[arg(long)]
    samples: Option<PathBuf>,
}

/// A summary row: (client index, symbol index, trade date). A run that crosses midnight UTC starts
/// new rows (the trades' activity times carry the new date), whose counts start again at 1.
type RowId = (usize, usize, NaiveDate);

/// Append instants per row, indexed by trade_count − 1.
#[derive(Default)]
struct Appends {
    rows: Mutex<HashMap<RowId, Vec<Instant>>>,
}

fn client_id(run: &str, c: usize) -> String {
    format!("L{run}x{c}")
}

fn symbol(s: usize) -> String {
    format!("SYM{s}")
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

struct Subscriber {
    /// (the trade's append in µs since the load began, latency in µs)
    latencies: Vec<(u64, u64)>,
    /// Frames received, per window of their arrival.
    frames: Vec<u64>,
}

/// The window of an instant (all in one window when `window` is zero).
fn window_of(started: Instant, at: Instant, window: Duration) -> u32 {
    if window.is_zero() {
        0
    } else {
        (at.saturating_duration_since(started).as_secs_f64() / window.as_secs_f64()) as u32
    }
}

/// This process's CPU time (user + system) in seconds, from /proc/self/stat (in clock ticks of
/// 1/100 s, Linux's USER_HZ); `None` where there is no /proc.
fn own_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let (utime, stime): (f64, f64) = (fields.get(11)?.parse().ok()?, fields.get(12)?.parse().ok()?);
    Some((utime + stime) / 100.0)
}

#[allow(clippy::too_many_arguments)]
async fn subscribe(
    url: String,
    client: String,
    c: usize,
    appends: Arc<Appends>,
    target: Arc<Mutex<HashMap<RowId, usize>>>,
    mut target_set: tokio::sync::watch::Receiver<bool>,
    ready: tokio::sync::mpsc::Sender<()>,
    started: Arc<Mutex<Option<Instant>>>,
    window: Duration,
) -> Subscriber {
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.expect("connect to the dashboard");
    ws.send(Message::text(json!({"op": "subscribe", "client": client}).to_string())).await.expect("subscribe");
    let mut seen: HashMap<RowId, usize> = HashMap::new();
    let mut out = Subscriber { latencies: Vec::new(), frames: Vec::new() };
    let mut signalled = false;
    let done = |seen: &HashMap<RowId, usize>| {
        let target = target.lock().unwrap_or_else(|e| e.into_inner());
        !target.is_empty()
            && target.iter().filter(|(row, _)| row.0 == c).all(|(row, n)| seen.get(row).copied().unwrap_or(0) >= *n)
    };
    loop {
        let m = tokio::select! {
            m = ws.next() => m,
            _ = target_set.changed() => {
                if done(&seen) { break }
                continue;
            }
        };
        let Some(Ok(m)) = m else { break };
        let Message::Text(t) = m else { continue };
        let now = Instant::now();
        let frame: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
        if frame["type"] != "delta" && frame["type"] != "snapshot" {
            continue;
        }
        if frame["type"] == "snapshot" && !signalled {
            let _ = ready.send(()).await;
            signalled = true;
        }
        let load_started = *started.lock().unwrap_or_else(|e| e.into_inner());
        let w = load_started.map_or(0, |s| window_of(s, now, window)) as usize;
        if out.frames.len() <= w {
            out.frames.resize(w + 1, 0);
        }
        out.frames[w] += 1;
        for r in frame["rows"].as_array().map(Vec::as_slice).unwrap_or_default() {
            let Some(s) =
                r["symbol"].as_str().and_then(|s| s.strip_prefix("SYM")).and_then(|s| s.parse::<usize>().ok())
            else {
                continue;
            };
            let Some(date) = r["trade_date"].as_str().and_then(|d| d.parse::<NaiveDate>().ok()) else { continue };
            let row = (c, s, date);
            let count = r["trade_count"].as_u64().unwrap_or(0) as usize;
            let last = seen.entry(row).or_insert(0);
            if count > *last {
                let rows = appends.rows.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(times) = rows.get(&row) {
                    for t in &times[*last..count.min(times.len())] {
                        let at = load_started.map_or(0, |s| t.saturating_duration_since(s).as_micros() as u64);
                        out.latencies.push((at, now.saturating_duration_since(*t).as_micros() as u64));
                    }
                }
                *last = count;
            }
        }
        if done(&seen) {
            break;
        }
    }
    out
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let run = format!("{:04x}", rand::random::<u16>());
    std::fs::create_dir_all(&args.logs).expect("log dir");
    let appends = Arc::new(Appends::default());
    let target: Arc<Mutex<HashMap<RowId, usize>>> = Arc::default();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(args.subscribers.max(1));
    let (target_tx, target_rx) = tokio::sync::watch::channel(false);
    let load_started: Arc<Mutex<Option<Instant>>> = Arc::default();
    let window = Duration::from_secs(args.window_secs);
    let mut subs = Vec::new();
    for i in 0..args.subscribers {
        let c = i % args.clients;
        subs.push(tokio::spawn(subscribe(
            args.ws.clone(),
            client_id(&run, c),
            c,
            appends.clone(),
            target.clone(),
            target_rx.clone(),
            ready_tx.clone(),
            load_started.clone(),
            window,
        )));
    }
    for _ in 0..args.subscribers {
        ready_rx.recv().await.expect("subscriber ready");
    }
    let today = chrono::Utc::now().date_naive();
    let mut files: Vec<std::fs::File> = (0..args.clients)
        .map(|c| {
            let path =
                args.logs.join(format!("tradeLog_client{}.{}.log", client_id(&run, c), today.format("%Y.%m.%d")));
            std::fs::OpenOptions::new().create(true).append(true).open(path).expect("log file")
        })
        .collect();
    let rows = args.clients * args.symbols;
    let mut counts: HashMap<RowId, usize> = HashMap::new();
    let mut next_row = 0usize;
    let mut line = Vec::with_capacity(512);
    let mut batches: Vec<Vec<u8>> = vec![Vec::new(); args.clients];
    let mut pending: Vec<(RowId, usize)> = Vec::new();
    let started = Instant::now();
    let cpu_at_start = own_cpu_seconds();
    let started_unix_ms = chrono::Utc::now().timestamp_millis();
    *load_started.lock().unwrap_or_else(|e| e.into_inner()) = Some(started);
    let total = args.rate as u64 * args.seconds;
    let mut written = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    while written < total {
        tick.tick().await;
        // Lines due by now at the configured rate.
        let due = ((started.elapsed().as_secs_f64() * args.rate as f64) as u64).min(total);
        if due <= written {
            continue;
        }
        for _ in written..due {
            let row = next_row % rows;
            next_row += 1;
            let (c, s) = (row / args.symbols, row % args.symbols);
            let at = chrono::Utc::now().naive_utc();
            let trade = Trade::from_template(at, &symbol(s), Side::Buy, Decimal::new(10025, 2), 1, "ACC1");
            line.clear();
            render_line_into(&trade, &mut line);
            batches[c].extend_from_slice(&line);
            let id = (c, s, at.date());
            let count = counts.entry(id).or_insert(0);
            *count += 1;
            pending.push((id, *count));
        }
        let now = Instant::now();
        {
            let mut map = appends.rows.lock().unwrap_or_else(|e| e.into_inner());
            for (row, _) in pending.drain(..) {
                map.entry(row).or_default().push(now);
            }
        }
        for (c, batch) in batches.iter_mut().enumerate() {
            if !batch.is_empty() {
                files[c].write_all(batch).expect("append");
                batch.clear();
            }
        }
        written = due;
    }
    let load_secs = started.elapsed().as_secs_f64();
    {
        let mut t = target.lock().unwrap_or_else(|e| e.into_inner());
        t.extend(counts.iter().map(|(row, n)| (*row, *n)));
    }
    let _ = target_tx.send(true);
    let mut samples: Vec<(u64, u64)> = Vec::new();
    let mut frames_per_window: Vec<u64> = Vec::new();
    let wait = tokio::time::timeout(Duration::from_secs(60), futures::future::join_all(subs)).await;
    let mut complete = true;
    match wait {
        Ok(results) => {
            for r in results.into_iter().flatten() {
                samples.extend(r.latencies);
                if frames_per_window.len() < r.frames.len() {
                    frames_per_window.resize(r.frames.len(), 0);
                }
                for (w, n) in r.frames.iter().enumerate() {
                    frames_per_window[w] += n;
                }
            }
        }
        Err(_) => complete = false,
    }
    let elapsed = started.elapsed().as_secs_f64();
    let client_cpu = own_cpu_seconds().zip(cpu_at_start).map(|(end, start)| (end - start) / elapsed * 100.0);
    let frames: u64 = frames_per_window.iter().sum();
    let ms = |us: u64| us as f64 / 1000.0;
    if let Some(path) = &args.samples {
        let mut text = format!("# load_started_unix_ms {started_unix_ms}\n");
        for (at, l) in &samples {
            text.push_str(&format!("{:.3} {:.3}\n", ms(*at), ms(*l)));
        }
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("cannot write the samples to {}: {e}", path.display());
        }
    }
    if args.window_secs > 0 {
        let windows = args.seconds.div_ceil(args.window_secs) as u32;
        for w in 0..windows {
            let mut lat: Vec<u64> = samples
                .iter()
                .filter(|(at, _)| (*at / (args.window_secs * 1_000_000)) as u32 == w)
                .map(|(_, l)| *l)
                .collect();
            lat.sort_unstable();
            let from = u64::from(w) * args.window_secs;
            let to = (from + args.window_secs).min(args.seconds);
            println!(
                "{:<24} window {:>4}-{:<4} s  trades seen {:>8}  latency p50 {:>7.1} ms  p99 {:>7.1} ms  max {:>7.1} ms  frames {:>7.0}/s",
                args.label,
                from,
                to,
                lat.len(),
                ms(percentile(&lat, 0.50)),
                ms(percentile(&lat, 0.99)),
                ms(lat.last().copied().unwrap_or(0)),
                frames_per_window.get(w as usize).copied().unwrap_or(0) as f64 / (to - from).max(1) as f64,
            );
        }
    }
    let mut latencies: Vec<u64> = samples.into_iter().map(|(_, l)| l).collect();
    latencies.sort_unstable();
    println!(
        "{:<24} trades {:>7} ({:>6.0}/s over {:.1} s)  subscribers {:>5}  clients {:>4}  latency p50 {:>7.1} ms  p99 {:>7.1} ms  max {:>7.1} ms  frames {:>8} ({:>7.0}/s){}",
        args.label,
        total,
        total as f64 / load_secs,
        load_secs,
        args.subscribers,
        args.clients,
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or(0)),
        frames,
        frames as f64 / elapsed,
        if complete { String::new() } else { "  INCOMPLETE: not every subscriber saw every trade within 60 s".into() }
    );
    if let Some(cpu) = client_cpu {
        // The load client shares the machine: what it takes is not the pipeline's.
        println!("{:<24} this client's CPU from the load's start to the last frame: {cpu:.0} % of a core", "");
    }
    let expected = total as usize * args.subscribers / args.clients;
    if latencies.len() < expected {
        println!("{:<24} measured {} of {} (trade, subscriber) pairs", "", latencies.len(), expected);
    }
}
