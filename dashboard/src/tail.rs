//! `tradeflow tail`: a terminal client of the dashboard protocol — the ticker plant's tail. Prints
//! each frame on one line, reconnects with backoff and resumes from its last sequence number.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;

use crate::config::TailArgs;

#[derive(Debug, thiserror::Error)]
pub enum TailError {
    #[error("the dashboard refused the connection: HTTP {status}: {body}")]
    Refused { status: u16, body: String },
    #[error("the dashboard refused the subscription: {code}: {message}")]
    Forbidden { code: String, message: String },
    #[error("bad --view {0:?}: expected rows, totals_by_symbol, totals_by_account or positions")]
    View(String),
    #[error("cannot write to stdout: {0}")]
    Stdout(std::io::Error),
    #[error("bad --url or --token: {0}")]
    Connect(String),
}

/// Where a resumed subscription continues.
#[derive(Default)]
struct Position {
    epoch: Option<String>,
    seq: Option<u64>,
}

pub async fn run(args: TailArgs, shutdown: CancellationToken) -> Result<(), TailError> {
    if !["rows", "totals_by_symbol", "totals_by_account", "positions"].contains(&args.view.as_str()) {
        return Err(TailError::View(args.view));
    }
    let url = args.url.clone();
    let mut position = Position::default();
    let mut frames = 0u64;
    let mut backoff = Duration::from_millis(250);
    loop {
        match session(&args, &url, &mut position, &mut frames, &shutdown).await {
            Ok(true) => return Ok(()),
            Ok(false) => backoff = Duration::from_millis(250),
            Err(Some(fatal)) => return Err(fatal),
            Err(None) => {}
        }
        if shutdown.is_cancelled() {
            return Ok(());
        }
        eprintln!("disconnected; reconnecting in {} ms", backoff.as_millis());
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// One connection. `Ok(true)`: done (frame limit or shutdown); `Ok(false)`: the connection ended
/// after working; `Err(None)`: it failed, retry; `Err(Some)`: give up.
async fn session(
    args: &TailArgs,
    url: &str,
    position: &mut Position,
    frames: &mut u64,
    shutdown: &CancellationToken,
) -> Result<bool, Option<TailError>> {
    // The token as a subprotocol (a header), as the page sends it: never in the URL.
    let request = {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
        let mut request = match url.into_client_request() {
            Ok(r) => r,
            Err(e) => return Err(Some(TailError::Connect(e.to_string()))),
        };
        let offered = match &args.token {
            Some(t) => format!("tradeflow.v1, {t}"),
            None => "tradeflow.v1".to_owned(),
        };
        match offered.parse() {
            Ok(value) => {
                request.headers_mut().insert("sec-websocket-protocol", value);
            }
            Err(_) => return Err(Some(TailError::Connect("the token is not a valid header value".into()))),
        }
        request
    };
    let (mut ws, _) = match tokio_tungstenite::connect_async(request).await {
        Ok(ok) => ok,
        Err(tungstenite::Error::Http(response)) => {
            let status = response.status().as_u16();
            let body =
                response.body().as_ref().map(|b| String::from_utf8_lossy(b).trim().to_owned()).unwrap_or_default();
            if status == 401 || status == 403 {
                return Err(Some(TailError::Refused { status, body }));
            }
            eprintln!("connecting to {}: HTTP {status} {body}", args.url);
            return Err(None);
        }
        Err(e) => {
            eprintln!("connecting to {}: {e}", args.url);
            return Err(None);
        }
    };
    let mut request = json!({"op": "subscribe", "client": args.client, "view": args.view});
    if let Some(a) = &args.account {
        request["account"] = json!(a);
    }
    if let Some(s) = &args.symbol {
        request["symbol"] = json!(s);
    }
    if let (Some(epoch), Some(seq)) = (&position.epoch, position.seq) {
        request["epoch"] = json!(epoch);
        request["since"] = json!(seq);
    }
    if ws.send(Message::text(request.to_string())).await.is_err() {
        return Err(None);
    }
    let mut stdout = std::io::stdout().lock();
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => {
                let _ = ws.close(None).await;
                return Ok(true);
            }
            m = ws.next() => m,
        };
        let text = match message {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(_))) | None => return Ok(false),
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                eprintln!("connection error: {e}");
                return Err(None);
            }
        };
        let frame: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        match frame["type"].as_str() {
            Some("snapshot" | "resumed") => {
                position.epoch = frame["epoch"].as_str().map(str::to_owned);
                position.seq = frame[if frame["type"] == "resumed" { "since" } else { "seq" }].as_u64();
            }
            Some("delta") => position.seq = frame["seq"].as_u64(),
            Some("error") if frame["code"] == "forbidden" => {
                let code = frame["code"].as_str().unwrap_or_default().to_owned();
                let message = frame["message"].as_str().unwrap_or_default().to_owned();
                return Err(Some(TailError::Forbidden { code, message }));
            }
            _ => {}
        }
        let line = if args.json { text.to_string() } else { describe(&frame) };
        writeln!(stdout, "{line}").and_then(|_| stdout.flush()).map_err(|e| Some(TailError::Stdout(e)))?;
        *frames += 1;
        if args.frames > 0 && *frames >= args.frames {
            let _ = ws.close(None).await;
            return Ok(true);
        }
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

fn row_text(r: &Value) -> String {
    format!(
        "{} {} {} n={} net={} last={} mark={} mv={} rpnl={} upnl={} pnl={}{}",
        s(&r["trade_date"]),
        s(&r["account_id"]),
        s(&r["symbol"]),
        s(&r["trade_count"]),
        s(&r["net_qty"]),
        s(&r["last_price"]),
        s(&r["mark_price"]),
        s(&r["market_value"]),
        s(&r["realized_pnl"]),
        s(&r["unrealized_pnl"]),
        s(&r["total_pnl"]),
        if r["mark_stale"] == Value::Bool(true) { " STALE" } else { "" }
    )
}

fn total_text(t: &Value) -> String {
    format!(
        "{} {} rows={} n={} net={} buy={} sell={} mv={} rpnl={} pnl={}",
        s(&t["trade_date"]),
        s(&t["group"]),
        s(&t["rows"]),
        s(&t["trade_count"]),
        s(&t["net_qty"]),
        s(&t["buy_notional"]),
        s(&t["sell_notional"]),
        s(&t["market_value"]),
        s(&t["realized_pnl"]),
        s(&t["total_pnl"])
    )
}

fn position_text(p: &Value) -> String {
    format!(
        "{} {} pos={} avg={} cost={} mark={} mv={} rpnl={} upnl={} pnl={} open={} dpnl={}",
        s(&p["account_id"]),
        s(&p["symbol"]),
        s(&p["position"]),
        s(&p["avg_cost"]),
        s(&p["cost_basis"]),
        s(&p["mark_price"]),
        s(&p["market_value"]),
        s(&p["realized_pnl"]),
        s(&p["unrealized_pnl"]),
        s(&p["total_pnl"]),
        s(&p["day_open_mark"]),
        s(&p["day_pnl"])
    )
}

/// One line per frame.
pub fn describe(frame: &Value) -> String {
    let now = chrono::Local::now().format("%H:%M:%S%.3f");
    let mut line = format!("{now} ");
    let rows = frame["rows"].as_array().map(Vec::as_slice).unwrap_or_default();
    let _ = match frame["type"].as_str().unwrap_or("?") {
        "hello" => {
            write!(line, "hello auth={} client={} ready={}", s(&frame["auth"]), s(&frame["client"]), s(&frame["ready"]))
        }
        "snapshot" => {
            write!(line, "snapshot client={} seq={} rows={}", s(&frame["client"]), s(&frame["seq"]), rows.len())
        }
        "resumed" => write!(
            line,
            "resumed since={} to seq={} replaying={}",
            s(&frame["since"]),
            s(&frame["seq"]),
            s(&frame["replayed"])
        ),
        "delta" => write!(line, "delta seq={}", s(&frame["seq"])),
        "view" => write!(
            line,
            "view {} seq={} {}",
            s(&frame["view"]),
            s(&frame["seq"]),
            if frame["snapshot"] == Value::Bool(true) { "snapshot" } else { "update" }
        ),
        "error" => write!(line, "error {}: {}", s(&frame["code"]), s(&frame["message"])),
        "feed" if frame["state"] == "down" => write!(
            line,
            "FEED DOWN since {} ({}, {}): the rows are stale",
            s(&frame["since"]),
            s(&frame["reason"]),
            s(&frame["upstream"])
        ),
        "feed" => write!(line, "feed up"),
        other => write!(line, "{other}"),
    };
    let is_view = frame["type"] == "view";
    let is_positions = frame["view"] == "positions";
    for r in rows {
        line.push_str(" | ");
        line.push_str(&if is_positions {
            position_text(r)
        } else if is_view {
            total_text(r)
        } else {
            row_text(r)
        });
    }
    line
}
