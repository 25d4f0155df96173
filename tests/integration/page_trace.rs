//! The page benchmark's optional trace (`BENCH_PAGE_TRACE=path`): a Chrome DevTools Protocol trace
//! of a loaded window (`Tracing.start` with the DevTools timeline's categories on the browser's
//! own CDP endpoint, the one chromedriver reports as `debuggerAddress`), saved as JSON (it opens in
//! DevTools' Performance panel or Perfetto), and a summary of where the renderer's main thread spent
//! the window's wall time: scripting (split by what started it: a websocket's `onmessage`, the
//! animation frame that repaints, timers), style, layout, paint and composite, GC, idle.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context as _, Result, anyhow, bail};
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The DevTools Performance panel's categories, without the JS sampler (its own overhead).
const CATEGORIES: &[&str] = &[
    "-*",
    "toplevel",
    "devtools.timeline",
    "disabled-by-default-devtools.timeline",
    "disabled-by-default-devtools.timeline.frame",
    "v8.execute",
    "blink.user_timing",
];

type Sink = futures::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Message,
>;

/// A trace being recorded: `end` stops it and yields every event.
pub(crate) struct Trace {
    sink: Sink,
    events: JoinHandle<Result<Vec<Value>>>,
}

/// Starts tracing the whole browser on its CDP endpoint (`debugger`: "host:port").
pub(crate) async fn start(debugger: &str) -> Result<Trace> {
    let port: u16 = debugger.rsplit(':').next().and_then(|p| p.parse().ok()).context("debuggerAddress's port")?;
    let version = json_version(port).await.with_context(|| format!("GET {debugger}/json/version"))?;
    let url = version["webSocketDebuggerUrl"].as_str().context("webSocketDebuggerUrl")?;
    let (ws, _) = tokio_tungstenite::connect_async(url).await.with_context(|| format!("connect {url}"))?;
    let (mut sink, mut stream) = ws.split();
    let start = json!({ "id": 1, "method": "Tracing.start", "params": {
        "traceConfig": { "includedCategories": CATEGORIES, "recordMode": "recordContinuously" },
        "transferMode": "ReportEvents" } });
    sink.send(Message::text(start.to_string())).await.context("send Tracing.start")?;
    // The reader collects `Tracing.dataCollected` until `Tracing.tracingComplete`.
    let events = tokio::spawn(async move {
        let mut events = Vec::new();
        while let Some(message) = stream.next().await {
            let Message::Text(text) = message.context("CDP socket")? else { continue };
            let mut m: Value = serde_json::from_str(text.as_str()).context("a CDP message")?;
            if m.get("error").is_some() {
                bail!("CDP answered {m}");
            }
            match m["method"].as_str() {
                Some("Tracing.dataCollected") => {
                    if let Some(Value::Array(v)) = m["params"].get_mut("value").map(Value::take) {
                        events.extend(v);
                    }
                }
                Some("Tracing.tracingComplete") => return Ok(events),
                _ => {}
            }
        }
        Err(anyhow!("the CDP socket closed before Tracing.tracingComplete"))
    });
    Ok(Trace { sink, events })
}

/// `GET /json/version`, read by its content-length: Chromium's DevTools server keeps the connection
/// open (a read to the end never ends).
async fn json_version(port: u16) -> Result<Value> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(format!("GET /json/version HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n\r\n").as_bytes()).await?;
    let mut buf = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, s.read(&mut chunk)).await.context("no answer in 30 s")??;
        if n == 0 {
            bail!("the connection closed after {} bytes", buf.len());
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                .and_then(|v| v.parse::<usize>().ok())
                .context("no content-length")?;
            if body.len() >= length {
                return serde_json::from_str(&body[..length]).context("the answer is not JSON");
            }
        }
    }
}

impl Trace {
    /// Asks the browser to stop (the events keep arriving until `finish`).
    pub(crate) async fn end(&mut self) -> Result<()> {
        let end = json!({ "id": 2, "method": "Tracing.end" });
        self.sink.send(Message::text(end.to_string())).await.context("send Tracing.end")
    }

    /// Every event, once the browser has flushed them; saved to `path` as `{"traceEvents": […]}`.
    pub(crate) async fn finish(self, path: &Path) -> Result<Vec<Value>> {
        let events = self.events.await.context("the trace reader")??;
        let file = std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?;
        serde_json::to_writer(std::io::BufWriter::new(file), &json!({ "traceEvents": &events }))
            .with_context(|| format!("write {}", path.display()))?;
        Ok(events)
    }
}

/// What a trace event's own time (its duration less its children's) counts as.
fn bucket(name: &str) -> &'static str {
    match name {
        "FunctionCall"
        | "EventDispatch"
        | "TimerFire"
        | "FireAnimationFrame"
        | "EvaluateScript"
        | "RunMicrotasks"
        | "v8.execute"
        | "V8.Execute"
        | "v8.callFunction"
        | "v8.run"
        | "v8.compile"
        | "v8.compileModule"
        | "v8.evaluateModule"
        | "FireIdleCallback"
        | "XHRReadyStateChange"
        | "XHRLoad"
        | "V8.DeoptimizeCode" => "scripting",
        "UpdateLayoutTree" | "RecalculateStyles" | "ParseAuthorStyleSheet" => "style",
        "Layout" => "layout",
        "PrePaint"
        | "HitTest"
        | "IntersectionObserverController::computeIntersections"
        | "ScrollLayer"
        | "UpdateLayerTree"
        | "Animation"
        | "ComputeIntersections" => "pre-paint, hit test",
        "Paint" | "PaintImage" | "PaintSetup" | "Layerize" | "UpdateLayer" | "CompositeLayers" | "Commit"
        | "RasterTask" | "Decode Image" | "Draw" | "ImplSideFling" => "paint, composite",
        "MinorGC" | "MajorGC" | "GCEvent" => "GC",
        n if n.starts_with("V8.GC")
            || n.starts_with("BlinkGC")
            || n.starts_with("CppGC")
            || n.starts_with("ThreadState::") =>
        {
            "GC"
        }
        "ParseHTML" => "loading",
        _ => "other (task overhead)",
    }
}

/// A complete interval on one thread.
#[derive(Clone)]
struct Span {
    ts: f64,
    end: f64,
    name: String,
    args: Value,
}

/// A thread: (pid, tid).
type Thread = (i64, i64);

/// Spans per thread, from "X" events and matched "B"/"E" pairs; thread names from metadata.
fn spans(events: &[Value]) -> (HashMap<Thread, Vec<Span>>, HashMap<Thread, String>) {
    let mut threads: HashMap<(i64, i64), Vec<Span>> = HashMap::new();
    let mut names = HashMap::new();
    let mut open: HashMap<(i64, i64), Vec<Span>> = HashMap::new();
    for e in events {
        let id = (e["pid"].as_i64().unwrap_or(0), e["tid"].as_i64().unwrap_or(0));
        let ts = e["ts"].as_f64().unwrap_or(0.0) / 1000.0; // µs → ms
        let name = e["name"].as_str().unwrap_or("").to_owned();
        match e["ph"].as_str() {
            Some("M") if name == "thread_name" => {
                names.insert(id, e["args"]["name"].as_str().unwrap_or("").to_owned());
            }
            Some("X") => {
                let end = ts + e["dur"].as_f64().unwrap_or(0.0) / 1000.0;
                threads.entry(id).or_default().push(Span { ts, end, name, args: e["args"].clone() });
            }
            Some("B") => open.entry(id).or_default().push(Span { ts, end: ts, name, args: e["args"].clone() }),
            Some("E") => {
                if let Some(mut s) = open.get_mut(&id).and_then(Vec::pop) {
                    s.end = ts;
                    threads.entry(id).or_default().push(s);
                }
            }
            _ => {}
        }
    }
    (threads, names)
}

/// What started a piece of script: a websocket message (by file), an animation frame (by the
/// first function called), a timer, or something else.
fn script_root(s: &Span, first_call: Option<&Span>) -> String {
    let call = first_call.map(|c| {
        let d = &c.args["data"];
        let url = d["url"].as_str().unwrap_or("");
        let file = url.rsplit('/').next().unwrap_or(url);
        (d["functionName"].as_str().unwrap_or("").to_owned(), file.to_owned())
    });
    let (function, file) = call.unwrap_or_default();
    match s.name.as_str() {
        "FireAnimationFrame" if function == "onFrame" => "animation frame: the probe's frame counter".into(),
        "FireAnimationFrame" => {
            format!("animation frame: {} ({file})", if function.is_empty() { "?" } else { &function })
        }
        "TimerFire" => format!("timer: {} ({file})", if function.is_empty() { "?" } else { &function }),
        _ if function.contains("onmessage") => format!("websocket onmessage ({file})"),
        "EventDispatch" => format!("event {}", s.args["data"]["type"].as_str().unwrap_or("?")),
        _ if !function.is_empty() => format!("{function} ({file})"),
        name => name.to_owned(),
    }
}

/// Per thread: its name, its busy time (top-level tasks) and the own time per bucket and per
/// script root.
struct ThreadTime {
    name: String,
    busy: f64,
    tasks: usize,
    longest: f64,
    buckets: HashMap<&'static str, f64>,
    scripts: HashMap<String, f64>,
    events: HashMap<String, f64>,
}

fn thread_time(name: String, mut spans: Vec<Span>, from: f64, to: f64) -> ThreadTime {
    spans.sort_by(|a, b| a.ts.total_cmp(&b.ts).then(b.end.total_cmp(&a.end)));
    let mut t = ThreadTime {
        name,
        busy: 0.0,
        tasks: 0,
        longest: 0.0,
        buckets: HashMap::new(),
        scripts: HashMap::new(),
        events: HashMap::new(),
    };
    // The stack of open spans: (index, children's time so far, script root).
    let mut stack: Vec<(usize, f64, Option<String>)> = Vec::new();
    let clip = |s: &Span| (s.end.min(to) - s.ts.max(from)).max(0.0);
    let close = |t: &mut ThreadTime, spans: &[Span], (i, children, root): (usize, f64, Option<String>)| {
        let s = &spans[i];
        let own = (clip(s) - children).max(0.0);
        let b = bucket(&s.name);
        *t.buckets.entry(b).or_default() += own;
        *t.events.entry(s.name.clone()).or_default() += own;
        if b == "scripting" || b == "GC" {
            let root = root.unwrap_or_else(|| "script outside a task".into());
            *t.scripts.entry(if b == "GC" { format!("{root} [GC]") } else { root }).or_default() += own;
        }
    };
    for i in 0..spans.len() {
        while let Some(&(top, _, _)) = stack.last() {
            if spans[i].ts >= spans[top].end {
                let done = stack.pop().expect("non-empty");
                let d = clip(&spans[done.0]);
                close(&mut t, &spans, done);
                if let Some(parent) = stack.last_mut() {
                    parent.1 += d;
                }
            } else {
                break;
            }
        }
        let parent_root = stack.last().and_then(|(_, _, r)| r.clone());
        let root = parent_root.or_else(|| {
            (bucket(&spans[i].name) == "scripting").then(|| {
                let s = &spans[i];
                let first_call = spans[i..].iter().take_while(|c| c.ts < s.end).find(|c| c.name == "FunctionCall");
                script_root(s, first_call)
            })
        });
        if stack.is_empty() {
            let d = clip(&spans[i]);
            if d > 0.0 {
                t.busy += d;
                t.tasks += 1;
                t.longest = t.longest.max(d);
            }
        }
        stack.push((i, 0.0, root));
    }
    while let Some(done) = stack.pop() {
        let d = clip(&spans[done.0]);
        close(&mut t, &spans, done);
        if let Some(parent) = stack.last_mut() {
            parent.1 += d;
        }
    }
    t
}

fn top<K: std::fmt::Display>(map: &HashMap<K, f64>, n: usize, window: f64) -> String {
    let mut v: Vec<_> = map.iter().filter(|(_, ms)| **ms > 0.0).collect();
    v.sort_by(|a, b| b.1.total_cmp(a.1));
    v.iter().take(n).map(|(k, ms)| format!("{k} {:.1} %", 100.0 * **ms / window)).collect::<Vec<_>>().join(", ")
}

/// The summary lines: the page's main thread (the renderer's `CrRendererMain` busiest in the
/// window) split by bucket and script root, as shares of the window's wall time, then the other
/// busiest threads.
pub(crate) fn summary(events: &[Value]) -> Result<Vec<String>> {
    let (threads, names) = spans(events);
    let all = threads.values().flatten();
    let from = all.clone().map(|s| s.ts).fold(f64::INFINITY, f64::min);
    let to = all.map(|s| s.end).fold(f64::NEG_INFINITY, f64::max);
    if to.partial_cmp(&from) != Some(std::cmp::Ordering::Greater) {
        bail!("the trace holds no complete events ({} events in all)", events.len());
    }
    let window = to - from;
    let mut times: Vec<((i64, i64), ThreadTime)> = threads
        .into_iter()
        .map(|(id, s)| {
            let name = names.get(&id).cloned().unwrap_or_else(|| format!("{}:{}", id.0, id.1));
            (id, thread_time(name, s, from, to))
        })
        .collect();
    times.sort_by(|a, b| b.1.busy.total_cmp(&a.1.busy));
    let main =
        times.iter().find(|(_, t)| t.name == "CrRendererMain").context("no CrRendererMain thread in the trace")?;
    let m = &main.1;
    let share = |ms: f64| 100.0 * ms / window;
    let b = |k: &str| m.buckets.get(k).copied().unwrap_or(0.0);
    let script = |pred: &dyn Fn(&str) -> bool| {
        m.scripts.iter().filter(|(k, _)| !k.ends_with("[GC]") && pred(k)).map(|(_, ms)| ms).sum::<f64>()
    };
    let ws = script(&|k| k.starts_with("websocket onmessage"));
    let frames = script(&|k| k.starts_with("animation frame") && !k.contains("probe"));
    let probe = script(&|k| k.contains("probe"));
    let timers = script(&|k| k.starts_with("timer"));
    let scripting = b("scripting");
    let mut out = vec![
        format!(
            "trace: {:.1} s window, {} events; the page's main thread (CrRendererMain, pid {}): busy {:.1} % in {} top-level tasks (longest {:.1} ms), idle {:.1} %",
            window / 1000.0,
            events.len(),
            (main.0).0,
            share(m.busy),
            m.tasks,
            m.longest,
            share(window - m.busy),
        ),
        format!(
            "trace split (share of wall time): scripting {:.1} % (websocket onmessage {:.1} %, the repaint's animation frame {:.1} %, timers {:.1} %, the probe {:.1} %, other {:.1} %); \
             style {:.1} %; layout {:.1} %; pre-paint and hit test {:.1} %; paint and composite {:.1} %; GC {:.1} %; other (task overhead) {:.1} %; idle {:.1} %",
            share(scripting),
            share(ws),
            share(frames),
            share(timers),
            share(probe),
            share(scripting - ws - frames - timers - probe),
            share(b("style")),
            share(b("layout")),
            share(b("pre-paint, hit test")),
            share(b("paint, composite")),
            share(b("GC")),
            share(b("other (task overhead)") + b("loading")),
            share(window - m.busy),
        ),
        format!("trace scripting by what started it: {}", top(&m.scripts, 10, window)),
        format!("trace own time by event: {}", top(&m.events, 12, window)),
    ];
    let others: Vec<String> = times
        .iter()
        .filter(|(id, _)| *id != main.0)
        .take(6)
        .map(|(id, t)| format!("{} (pid {}) {:.1} %", t.name, id.0, share(t.busy)))
        .collect();
    out.push(format!("trace other busiest threads (top-level tasks' share of wall time): {}", others.join(", ")));
    Ok(out)
}
