//! One websocket connection: requests in, frames out.
//!
//! The connection's requests are read by a task of their own ([`read_requests`]) and handed to
//! the session's task, which answers them and writes every frame; a subscription's frames come from
//! its [`Subscriber`] outbox, so while this socket is slow the fan-out keeps merging row updates
//! for it and nobody else waits. The feed's health ([`FeedHealth`]) reaches every connection as a
//! `feed` frame on each change (a watch: one pending state, coalesced), and a subscription's first
//! frames are preceded by one while the feed is down.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use futures::{SinkExt as _, StreamExt as _};
use tokio_util::sync::CancellationToken;
use tradeflow_core::ClientId;
use warp::ws::{Message, WebSocket};

use crate::bars_view::BarsSubscription;
use crate::feed_health::{FeedHealth, FeedState};
use crate::limits::{Bucket, Gate};
use crate::live::{Live, SharedFeed, Start, lock};
use crate::protocol::{Frame, Op, Request, View, feed_frame};
use crate::row::Filter;
use crate::subscriber::{Batch, Subscriber};
use crate::{positions, views};

/// A view subscription's first frame: totals, or holdings.
enum ViewRows {
    Totals(Vec<crate::protocol::Total>),
    Positions(Vec<positions::PositionRow>),
}

/// What every session shares.
pub struct SessionContext {
    pub live: Arc<Live>,
    pub auth_off: bool,
    pub max_message_bytes: usize,
    pub gate: Arc<Gate>,
    /// Whether the upstream feed flows.
    pub feed: Arc<FeedHealth>,
}

/// An active subscription; dropping it unregisters it from its feed.
struct Subscription {
    client: ClientId,
    view: View,
    feed: SharedFeed,
    subscriber: Arc<Subscriber>,
    live: Arc<Live>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.subscriber.close();
        lock(&self.feed).unsubscribe(self.subscriber.id);
        self.live.metrics.subscribers.fetch_sub(1, Relaxed);
    }
}

fn error(ctx: &SessionContext, code: &str, message: &str) -> String {
    ctx.live.metrics.error_frames.fetch_add(1, Relaxed);
    Frame::Error { code, message }.to_text()
}

/// Reads the connection's requests into `requests` (capacity 1: a client that sends faster than
/// its requests are answered waits on its own socket) until the socket ends or the session does.
///
/// A task of its own, so the socket is read only when it has something to read. Polled from the
/// session's `select!`, a new read future per frame sent tried a read each time, and tungstenite
/// zero-fills its whole read buffer (128 KiB, not settable through warp) before every read: 17 %
/// of the dashboard's CPU at 10,000 subscribers (docs/benchmarks.md, "Fan-out").
async fn read_requests(
    mut rx: futures::stream::SplitStream<WebSocket>,
    requests: tokio::sync::mpsc::Sender<Result<Message, warp::Error>>,
) {
    while let Some(message) = rx.next().await {
        let end = message.is_err();
        if requests.send(message).await.is_err() || end {
            break;
        }
    }
}

/// Runs the connection of a subscriber entitled to `entitled` (any client when auth is off).
pub async fn run(ws: WebSocket, ctx: Arc<SessionContext>, entitled: Option<ClientId>, shutdown: CancellationToken) {
    let (mut tx, rx) = ws.split();
    let (requests_tx, mut requests) = tokio::sync::mpsc::channel(1);
    // Aborted when the session ends, whichever way.
    let _reader = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(read_requests(rx, requests_tx)));
    let hello = Frame::Hello {
        epoch: &ctx.live.epoch,
        auth: !ctx.auth_off,
        client: entitled.as_ref().map(|c| c.as_str()),
        max_message_bytes: ctx.max_message_bytes,
        ready: ctx.live.metrics.ready.load(Relaxed) == 1,
    };
    if send(&mut tx, &ctx, hello.to_text()).await.is_err() {
        return;
    }
    // Changes from now on; the current state goes out with a subscription's first frames.
    let mut feed_state = ctx.feed.subscribe();
    feed_state.mark_unchanged();
    let mut subscription: Option<Subscription> = None;
    let mut bars: Option<BarsSubscription> = None;
    let mut subscribes = Bucket::per_minute(ctx.gate.limits.subscribes_per_minute);
    // A socket without a subscription is closed after the idle timeout.
    let mut unsubscribed_since = Some(tokio::time::Instant::now());
    loop {
        let idle_deadline = async {
            match unsubscribed_since {
                Some(since) => tokio::time::sleep_until(since + ctx.gate.idle_timeout()).await,
                None => std::future::pending().await,
            }
        };
        let next_batch = async {
            match &subscription {
                Some(s) => s.subscriber.next().await,
                None => std::future::pending().await,
            }
        };
        let next_bars = async {
            match &mut bars {
                Some(b) => b.next().await,
                None => std::future::pending().await,
            }
        };
        let feed_changed = async {
            if feed_state.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        let mut offered_at = None;
        let frames = tokio::select! {
            _ = shutdown.cancelled() => {
                let _ = tx.send(Message::close_with(1001u16, "dashboard shutting down")).await;
                break;
            }
            _ = idle_deadline => {
                ctx.gate.idle_closed.fetch_add(1, Relaxed);
                let _ = tx.send(Message::close_with(1008u16, "idle: no subscription")).await;
                break;
            }
            message = requests.recv() => match message {
                None | Some(Err(_)) => break,
                Some(Ok(m)) if m.is_close() => break,
                Some(Ok(m)) if m.is_ping() || m.is_pong() => continue,
                Some(Ok(m)) => {
                    let mut subs = Subscriptions { feed: &mut subscription, bars: &mut bars, feed_state: &mut feed_state };
                    let frames = handle(&ctx, entitled.as_ref(), &mut subs, &mut subscribes, &m);
                    let subscribed = subscription.is_some() || bars.is_some();
                    unsubscribed_since = match (subscribed, unsubscribed_since) {
                        (true, _) => None,
                        (false, Some(since)) => Some(since),
                        (false, None) => Some(tokio::time::Instant::now()),
                    };
                    frames
                }
            },
            batch = next_batch => match (batch, &subscription) {
                (Some(batch), Some(s)) => {
                    offered_at = Some(batch.since);
                    vec![render_batch(s, batch)]
                }
                _ => continue,
            },
            frame = next_bars => vec![frame],
            () = feed_changed => vec![feed_frame(&feed_state.borrow_and_update())],
        };
        let mut failed = false;
        for frame in frames {
            if send(&mut tx, &ctx, frame).await.is_err() {
                failed = true;
                break;
            }
        }
        if failed {
            break;
        }
        if let Some(since) = offered_at {
            ctx.live.metrics.fanout.observe(since.elapsed());
        }
    }
}

async fn send(
    tx: &mut futures::stream::SplitSink<WebSocket, Message>,
    ctx: &SessionContext,
    text: String,
) -> Result<(), warp::Error> {
    tx.send(Message::text(text)).await?;
    ctx.live.metrics.messages_sent.fetch_add(1, Relaxed);
    Ok(())
}

/// A connection's subscription: to a client's feed (rows and views over them), or to the bars
/// of a symbol; at most one at a time. With the connection's view of the upstream feed's state.
struct Subscriptions<'a> {
    feed: &'a mut Option<Subscription>,
    bars: &'a mut Option<BarsSubscription>,
    feed_state: &'a mut tokio::sync::watch::Receiver<FeedState>,
}

/// Before a subscription's first frames: a `feed` frame when the upstream feed is down (so a page
/// never shows the snapshot as live for a moment; taken as seen, so a change already pending is
/// not told twice).
fn feed_notice(feed_state: &mut tokio::sync::watch::Receiver<FeedState>, frames: &mut Vec<String>) {
    let state = *feed_state.borrow_and_update();
    if state.is_down() {
        frames.insert(0, feed_frame(&state));
    }
}

fn handle(
    ctx: &SessionContext,
    entitled: Option<&ClientId>,
    subscription: &mut Subscriptions<'_>,
    subscribes: &mut Bucket,
    message: &Message,
) -> Vec<String> {
    if message.as_bytes().len() > ctx.max_message_bytes {
        let text = format!(
            "message of {} bytes is over the limit of {} bytes",
            message.as_bytes().len(),
            ctx.max_message_bytes
        );
        return vec![error(ctx, "too_large", &text)];
    }
    let Ok(text) = message.to_str() else {
        return vec![error(ctx, "bad_request", "only text frames with JSON requests are accepted")];
    };
    let request: Request = match serde_json::from_str(text) {
        Ok(r) => r,
        Err(e) => return vec![error(ctx, "bad_request", &format!("malformed request: {e}"))],
    };
    match request.op {
        Op::Ping => vec![Frame::Pong { id: request.id }.to_text()],
        Op::Unsubscribe => {
            *subscription.feed = None;
            *subscription.bars = None;
            vec![Frame::Unsubscribed {}.to_text()]
        }
        Op::Subscribe if !subscribes.take() => {
            ctx.gate.rate_limited.fetch_add(1, Relaxed);
            let limit = ctx.gate.limits.subscribes_per_minute;
            vec![error(
                ctx,
                "rate_limited",
                &format!("over {limit} subscribes a minute on this socket; the current subscription stays"),
            )]
        }
        Op::Subscribe => subscribe(ctx, entitled, subscription, request),
    }
}

fn subscribe(
    ctx: &SessionContext,
    entitled: Option<&ClientId>,
    subscriptions: &mut Subscriptions<'_>,
    request: Request,
) -> Vec<String> {
    let Some(client) = request.client.as_deref() else {
        return vec![error(ctx, "bad_request", "subscribe needs a \"client\"")];
    };
    let client = match ClientId::parse(client) {
        Ok(c) => c,
        Err(e) => return vec![error(ctx, "bad_request", &e.to_string())],
    };
    if !ctx.auth_off && entitled != Some(&client) {
        let message = match entitled {
            Some(e) => format!("this token is for client {e}, not {client}"),
            None => "a token is required".to_owned(),
        };
        return vec![error(ctx, "forbidden", &message)];
    }
    let Subscriptions { feed: subscription, bars, feed_state } = subscriptions;
    **bars = None;
    if request.view == View::Bars {
        **subscription = None;
        let Some(symbol) = request.symbol.as_deref() else {
            return vec![error(ctx, "bad_request", "the bars view needs a \"symbol\"")];
        };
        if let Err(e) = tradeflow_core::edge::check_outside_key("symbol", symbol) {
            return vec![error(ctx, "bad_request", &e.to_string())];
        }
        ctx.live.metrics.snapshots.fetch_add(1, Relaxed);
        let (subscription, snapshot) = BarsSubscription::start(ctx.live.clone(), symbol.into());
        **bars = Some(subscription);
        let mut frames = vec![snapshot];
        feed_notice(feed_state, &mut frames);
        return frames;
    }
    **subscription = None;
    let live = ctx.live.clone();
    let filter = Filter { account: request.account.map(Into::into), symbol: request.symbol.map(Into::into) };
    let subscriber = Arc::new(Subscriber::new(live.next_subscriber_id(), filter.clone(), live.metrics.clone()));
    let view = request.view;
    let since = match (view, request.epoch, request.since) {
        (View::Rows, Some(epoch), Some(since)) if epoch == live.epoch => Some(since),
        _ => None,
    };
    let feed = live.feed(&client);
    let ready = live.metrics.ready.load(Relaxed) == 1;
    let (start, view_rows) = {
        let mut f = lock(&feed);
        let start = f.subscribe(subscriber.clone(), since);
        let view_rows = match view {
            View::Rows => None,
            View::Positions => Some(ViewRows::Positions(positions::positions(
                &f.rows(&filter),
                None,
                chrono::Utc::now().date_naive(),
                &live.day_open.snapshot(),
            ))),
            _ => Some(ViewRows::Totals(views::totals(view, &f.rows(&filter), None))),
        };
        (start, view_rows)
    };
    live.metrics.subscribers.fetch_add(1, Relaxed);
    let frames = match (start, view_rows) {
        (Start::Snapshot { seq, .. } | Start::Resume { seq, .. }, Some(view_rows)) => {
            live.metrics.snapshots.fetch_add(1, Relaxed);
            vec![match &view_rows {
                ViewRows::Totals(totals) => Frame::View { view, seq, snapshot: true, rows: totals }.to_text(),
                ViewRows::Positions(rows) => Frame::Positions { view, seq, snapshot: true, rows }.to_text(),
            }]
        }
        (Start::Snapshot { seq, rows }, None) => {
            live.metrics.snapshots.fetch_add(1, Relaxed);
            let rows = rows.iter().map(|r| r.as_ref()).collect();
            vec![Frame::Snapshot { client: client.as_str(), epoch: &live.epoch, seq, view, ready, rows }.to_text()]
        }
        (Start::Resume { since, seq, deltas }, None) => {
            live.metrics.resumes.fetch_add(1, Relaxed);
            live.metrics.replayed.fetch_add(deltas.len() as u64, Relaxed);
            let mut frames = vec![
                Frame::Resumed { client: client.as_str(), epoch: &live.epoch, since, seq, replayed: deltas.len() }
                    .to_text(),
            ];
            frames.extend(deltas.iter().map(|(seq, rows)| {
                Frame::Delta { seq: *seq, rows: rows.iter().map(|r| r.as_ref()).collect() }.to_text()
            }));
            frames
        }
    };
    **subscription = Some(Subscription { client, view, feed, subscriber, live });
    let mut frames = frames;
    feed_notice(feed_state, &mut frames);
    frames
}

fn render_batch(s: &Subscription, batch: Batch) -> String {
    match s.view {
        View::Rows => match &batch.whole {
            Some(offer) => offer.frame().to_owned(),
            None => Frame::Delta { seq: batch.seq, rows: batch.rows.iter().map(|r| r.as_ref()).collect() }.to_text(),
        },
        View::Positions => {
            let groups: BTreeSet<_> = batch.rows.iter().map(|r| positions::group_of(r)).collect();
            let rows = lock(&s.feed).rows(&s.subscriber.filter);
            let today = chrono::Utc::now().date_naive();
            let held = positions::positions(&rows, Some(&groups), today, &s.live.day_open.snapshot());
            Frame::Positions { view: View::Positions, seq: batch.seq, snapshot: false, rows: &held }.to_text()
        }
        view => {
            let groups: BTreeSet<_> = batch.rows.iter().map(|r| views::group_of(view, r)).collect();
            let rows = lock(&s.feed).rows(&s.subscriber.filter);
            let totals = views::totals(view, &rows, Some(&groups));
            tracing::trace!(client = %s.client, groups = groups.len(), "view update");
            Frame::View { view, seq: batch.seq, snapshot: false, rows: &totals }.to_text()
        }
    }
}
