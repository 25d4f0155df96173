//! The HTTP side (warp): the page, `/ws`, `/api/summary`, `/api/fill-bars`, `/api/config` and the ops endpoints.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tradeflow_core::ClientId;
use warp::filters::BoxedFilter;
use warp::http::{StatusCode, header};
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::access::{Access, Refusal};
use crate::feed_health::{DownReason, FeedState};
use crate::fill_bars::{FillBarsError, FillBarsQuery};
use crate::limits::Gate;
use crate::live::Live;
use crate::reply::{json, text};
use crate::rest::{self, QueryError, SummaryQuery};
use crate::row::Filter as RowFilter;
use crate::series::{self, SeriesQuery};
use crate::session::{self, SessionContext};

/// The page and its assets, compiled in (no build step; the image needs no extra files).
const INDEX_HTML: &str = include_str!("../web/index.html");
const APP_JS: &str = include_str!("../web/app.js");
const APP_CSS: &str = include_str!("../web/app.css");
const HOLDINGS_JS: &str = include_str!("../web/holdings.js");
const CHARTS_PAGE_JS: &str = include_str!("../web/charts.js");
/// The charting library, vendored unchanged (web/vendor/NOTICE: version, source, checksum, licence).
const CHARTS_JS: &str = include_str!("../web/vendor/lightweight-charts.standalone.production.js");
const CHARTS_LICENSE: &str = include_str!("../web/vendor/LICENSE-lightweight-charts");

/// Websocket messages above this size close the connection (1009) instead of getting an error
/// frame; between `--max-message-bytes` and this they get an error frame.
const HARD_MESSAGE_LIMIT: usize = 64 * 1024;

pub struct Server {
    /// The address the dashboard listens on (its own `Host` when auth is off).
    pub listen: std::net::SocketAddr,
    pub live: Arc<Live>,
    pub gate: Arc<Gate>,
    pub access: Access,
    pub db: Option<Arc<PgPool>>,
    pub sessions: Arc<SessionContext>,
    pub shutdown: CancellationToken,
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut r = Response::new(body.into());
    r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(content_type));
    r.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-cache"));
    r
}

fn refusal(server: &Server, r: &Refusal) -> Response {
    crate::reply::refusal(&server.live.metrics, r)
}

/// The websocket subprotocol the page and `tradeflow tail` offer, the token beside it.
pub const PROTOCOL: &str = "tradeflow.v1";

/// What a client offered in `Sec-WebSocket-Protocol`.
struct Subprotocols {
    tradeflow: bool,
    token: Option<String>,
}

impl Subprotocols {
    fn parse(header: Option<&str>) -> Self {
        let offered: Vec<&str> = header.unwrap_or_default().split(',').map(str::trim).collect();
        Self {
            tradeflow: offered.contains(&PROTOCOL),
            token: offered.iter().find(|p| p.starts_with("tf1.") || p.starts_with("tf2.")).map(|t| (*t).to_owned()),
        }
    }
}

/// A request whose `Host` is not the dashboard's while auth is off.
#[derive(Debug)]
struct BadHost(String);

impl warp::reject::Reject for BadHost {}

fn bearer(authorization: Option<&str>) -> Option<&str> {
    authorization.and_then(|h| h.strip_prefix("Bearer ")).map(str::trim)
}

pub fn routes(server: Arc<Server>) -> impl Filter<Extract = (Response,), Error = std::convert::Infallible> + Clone {
    let with = {
        let server = server.clone();
        move || {
            let server = server.clone();
            warp::any().map(move || server.clone())
        }
    };
    let index = warp::path::end().map(|| asset(INDEX_HTML, "text/html; charset=utf-8"));
    let app_js = warp::path!("app.js").map(|| asset(APP_JS, "text/javascript; charset=utf-8"));
    let app_css = warp::path!("app.css").map(|| asset(APP_CSS, "text/css; charset=utf-8"));
    let page_js = warp::path!("holdings.js")
        .map(|| asset(HOLDINGS_JS, "text/javascript; charset=utf-8"))
        .or(warp::path!("charts.js").map(|| asset(CHARTS_PAGE_JS, "text/javascript; charset=utf-8")))
        .unify();
    let charts_js = warp::path!("vendor" / "lightweight-charts.standalone.production.js")
        .map(|| asset(CHARTS_JS, "text/javascript; charset=utf-8"))
        .or(warp::path!("vendor" / "LICENSE-lightweight-charts")
            .map(|| asset(CHARTS_LICENSE, "text/plain; charset=utf-8")))
        .unify();
    let healthz = warp::path!("healthz").map(|| text(StatusCode::OK, "ok\n"));
    let readyz = warp::path!("readyz").and(with()).map(|s: Arc<Server>| {
        let feed = s.sessions.feed.state();
        if let FeedState::Down { reason, upstream, .. } = feed {
            let since = feed.since_text().unwrap_or_default();
            let why = match reason {
                DownReason::AllBrokersDown => "all brokers down",
                DownReason::NoProgress => "no fetch answered",
            };
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("upstream Kafka unreachable since {since} ({why}; {} consumer)\n", upstream.name()),
            )
        } else if s.live.metrics.ready.load(Relaxed) == 1 {
            text(StatusCode::OK, "ready\n")
        } else {
            text(StatusCode::SERVICE_UNAVAILABLE, "catching up with summaries and prices\n")
        }
    });
    let metrics = warp::path!("metrics").and(with()).map(|s: Arc<Server>| {
        let mut body = s.live.metrics.render();
        s.gate.render(&mut body);
        s.live.bars.render(&mut body);
        let mut r = text(StatusCode::OK, body);
        r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain; version=0.0.4"));
        r
    });
    let config = warp::path!("api" / "config").and(with()).map(|s: Arc<Server>| {
        json(&serde_json::json!({
            "auth": !s.access.auth_off(),
            "epoch": s.live.epoch,
            "stale_after_s": tradeflow_core::summary::MARK_STALE_AFTER.num_seconds(),
            "max_message_bytes": s.sessions.max_message_bytes,
        }))
    });
    let summary = warp::path!("api" / "summary")
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::optional::<String>("authorization"))
        .and(with())
        .then(|query: String, authorization: Option<String>, s: Arc<Server>| async move {
            summary(&s, &query, authorization.as_deref()).await
        });
    let series = warp::path!("api" / "series")
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::optional::<String>("authorization"))
        .and(with())
        .then(|query: String, authorization: Option<String>, s: Arc<Server>| async move {
            series(&s, &query, authorization.as_deref()).await
        });
    let fill_bars = warp::path!("api" / "fill-bars")
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::optional::<String>("authorization"))
        .and(with())
        .then(|query: String, authorization: Option<String>, s: Arc<Server>| async move {
            fill_bars(&s, &query, authorization.as_deref()).await
        });
    let ws = warp::path!("ws")
        .and(warp::ws())
        .and(warp::query::<HashMap<String, String>>().or(warp::any().map(HashMap::new)).unify())
        .and(warp::header::optional::<String>("origin"))
        .and(warp::header::optional::<String>("host"))
        .and(warp::header::optional::<String>("sec-websocket-protocol"))
        .and(with())
        .map(
            |ws: warp::ws::Ws,
             query: HashMap<String, String>,
             origin: Option<String>,
             host: Option<String>,
             protocols: Option<String>,
             s: Arc<Server>| {
                if let Err(r) = s.access.check_origin(origin.as_deref(), host.as_deref()) {
                    s.live.metrics.refused_origin.fetch_add(1, Relaxed);
                    tracing::info!(reason = %r, "websocket refused");
                    return text(StatusCode::FORBIDDEN, format!("{r}\n"));
                }
                // The token: in the `Sec-WebSocket-Protocol` header (the page and `tradeflow tail`
                // offer `tradeflow.v1` and the token: it stays out of URLs and access logs), or in
                // `?token=` (kept for older clients).
                let offered = Subprotocols::parse(protocols.as_deref());
                let token = offered.token.or_else(|| query.get("token").cloned());
                let entitled = match s.access.entitle(token.as_deref()) {
                    Ok(e) => e,
                    Err(r) => {
                        s.live.metrics.refused_token.fetch_add(1, Relaxed);
                        tracing::info!(reason = %r, "websocket refused");
                        return text(StatusCode::UNAUTHORIZED, format!("{r}\n"));
                    }
                };
                let permit = match s.gate.admit(entitled.as_ref().map(|c| c.as_str())) {
                    Ok(permit) => permit,
                    Err(why) => {
                        tracing::info!(reason = %why, "websocket refused");
                        return text(StatusCode::TOO_MANY_REQUESTS, format!("{why}\n"));
                    }
                };
                let (ctx, shutdown) = (s.sessions.clone(), s.shutdown.clone());
                let mut reply = ws
                    .max_message_size(HARD_MESSAGE_LIMIT)
                    .max_frame_size(HARD_MESSAGE_LIMIT)
                    .on_upgrade(move |socket| async move {
                        session::run(socket, ctx, entitled, shutdown).await;
                        drop(permit);
                    })
                    .into_response();
                if offered.tradeflow {
                    // A browser drops a connection whose server picks none of the offered protocols.
                    reply
                        .headers_mut()
                        .insert(header::SEC_WEBSOCKET_PROTOCOL, header::HeaderValue::from_static(PROTOCOL));
                }
                reply
            },
        );
    // Each route is boxed and the alternatives are folded one at a time: a chain of `.or()`s nests
    // every route's filter type in the next, which cost this crate over a minute of a release build
    // (docs/benchmarks.md, "Build time"); a boxed route is one dynamic call per request tried.
    let bars = crate::bars_rest::route(server.clone(), |s: &Server| crate::bars_rest::BarsContext {
        access: &s.access,
        gate: &s.gate,
        db: s.db.as_ref(),
        metrics: &s.live.metrics,
    });
    let routes: [BoxedFilter<(Response,)>; 13] = [
        app_js.boxed(),
        app_css.boxed(),
        page_js.boxed(),
        charts_js.boxed(),
        healthz.boxed(),
        readyz.boxed(),
        metrics.boxed(),
        config.boxed(),
        summary.boxed(),
        series.boxed(),
        bars.boxed(),
        fill_bars.boxed(),
        ws.boxed(),
    ];
    let get = warp::get().and(routes.into_iter().fold(index.boxed(), |all, route| all.or(route).unify().boxed()));
    // DNS rebinding: with auth off, only requests naming the dashboard itself.
    let host = warp::header::optional::<String>("host").and(with()).and_then(
        |host: Option<String>, s: Arc<Server>| async move {
            if s.access.check_host(host.as_deref(), s.listen) {
                Ok(())
            } else {
                s.live.metrics.refused_origin.fetch_add(1, Relaxed);
                Err(warp::reject::custom(BadHost(host.unwrap_or_default())))
            }
        },
    );
    host.untuple_one()
        .and(get)
        .recover(|rejection: warp::Rejection| async move {
            let r = if let Some(BadHost(host)) = rejection.find::<BadHost>() {
                text(
                    StatusCode::MISDIRECTED_REQUEST,
                    format!(
                        "Host {host:?} is not this dashboard (auth is off: only its own address and allowed origins)\n"
                    ),
                )
            } else if rejection.is_not_found() {
                text(StatusCode::NOT_FOUND, "not found\n")
            } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
                text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n")
            } else {
                text(StatusCode::BAD_REQUEST, format!("{rejection:?}\n"))
            };
            Ok::<_, std::convert::Infallible>(r)
        })
        .unify()
}

/// `GET /api/fill-bars` (crate::fill_bars).
async fn fill_bars(s: &Server, raw_query: &str, authorization: Option<&str>) -> Response {
    let query: FillBarsQuery = match serde_urlencoded::from_str(raw_query) {
        Ok(q) => q,
        Err(e) => {
            let expected = "client=…[&date=YYYY-MM-DD][&account=…][&symbol=…]";
            return text(StatusCode::BAD_REQUEST, format!("bad query: {e} (expected {expected})\n"));
        }
    };
    let client = match admit_rest(s, &query.client, bearer(authorization).or(query.token.as_deref())) {
        Ok(c) => c,
        Err(refused) => return *refused,
    };
    let date = match crate::fill_bars::trade_date(query.date.as_deref()) {
        Ok(d) => d,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    let (account, symbol) = (query.account.as_deref(), query.symbol.as_deref());
    if let Err(e) = crate::fill_bars::check_filter(account, symbol) {
        return text(StatusCode::BAD_REQUEST, format!("{e}\n"));
    }
    match crate::fill_bars::fill_bars(s.db.as_ref(), &client, date, account, symbol).await {
        Ok(answer) => json(&answer),
        Err(
            e @ (FillBarsError::BadDate(_)
            | FillBarsError::DateShape(_)
            | FillBarsError::BadKey(_)
            | FillBarsError::TooMany),
        ) => text(StatusCode::BAD_REQUEST, format!("{e}\n")),
        Err(e @ FillBarsError::NoDatabase) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
        Err(e) => {
            tracing::warn!(error = %e, "fill bars query failed");
            text(StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n"))
        }
    }
}

async fn summary(s: &Server, raw_query: &str, authorization: Option<&str>) -> Response {
    let query: SummaryQuery = match serde_urlencoded::from_str(raw_query) {
        Ok(q) => q,
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("bad query: {e} (expected client=…[&account=…][&symbol=…][&as_of=RFC3339])\n"),
            );
        }
    };
    let client = match admit_rest(s, &query.client, bearer(authorization).or(query.token.as_deref())) {
        Ok(c) => c,
        Err(refused) => return *refused,
    };
    let filter = RowFilter { account: query.account.map(Into::into), symbol: query.symbol.map(Into::into) };
    match query.as_of {
        None => json(&rest::live_rows(&s.live, &client, &filter)),
        Some(as_of) => match rest::as_of_rows(s.db.as_ref(), &client, &filter, &as_of).await {
            Ok(answer) => json(&answer),
            Err(e @ QueryError::BadTime(_)) => text(StatusCode::BAD_REQUEST, format!("{e}\n")),
            Err(e @ QueryError::NoDatabase) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
            Err(e) => {
                tracing::warn!(error = %e, "as-of query failed");
                text(StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n"))
            }
        },
    }
}

/// The token, client and rate checks every per-client REST endpoint shares (as `/api/summary`'s).
/// The refusal is boxed: a `Response` is large beside a `ClientId`.
fn admit_rest(s: &Server, client: &str, token: Option<&str>) -> Result<ClientId, Box<Response>> {
    let client = ClientId::parse(client).map_err(|e| Box::new(text(StatusCode::BAD_REQUEST, format!("{e}\n"))))?;
    let entitled = s.access.entitle(token).map_err(|r| Box::new(refusal(s, &r)))?;
    s.access.check_client(entitled.as_ref(), &client).map_err(|r| Box::new(refusal(s, &r)))?;
    if !s.gate.rest(client.as_str()) {
        s.live.metrics.rest_refused.fetch_add(1, Relaxed);
        let limit = s.gate.limits.rest_per_minute;
        return Err(Box::new(text(
            StatusCode::TOO_MANY_REQUESTS,
            format!("over {limit} requests a minute for client {client}; retry later\n"),
        )));
    }
    s.live.metrics.rest_requests.fetch_add(1, Relaxed);
    Ok(client)
}

async fn series(s: &Server, raw_query: &str, authorization: Option<&str>) -> Response {
    let query: SeriesQuery = match serde_urlencoded::from_str(raw_query) {
        Ok(q) => q,
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("bad query: {e} (expected client=…[&date=YYYY-MM-DD][&step_secs=10..3600])\n"),
            );
        }
    };
    let client = match admit_rest(s, &query.client, bearer(authorization).or(query.token.as_deref())) {
        Ok(c) => c,
        Err(refused) => return *refused,
    };
    let answer = match series::parse(&query, chrono::Utc::now().date_naive()) {
        Ok((date, step)) => series::series(s.db.as_deref(), &client, date, step).await,
        Err(e) => Err(e),
    };
    match answer {
        Ok(answer) => json(&answer),
        Err(e) if e.is_bad_request() => text(StatusCode::BAD_REQUEST, format!("{e}\n")),
        Err(e) => {
            tracing::warn!(error = %e, "series query failed");
            text(StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_queries_are_strict() {
        let q: SummaryQuery =
            serde_urlencoded::from_str("client=7&symbol=AAPL&as_of=2026-11-23T10%3A00%3A00%2B00%3A00").unwrap();
        assert_eq!((q.client.as_str(), q.symbol.as_deref()), ("7", Some("AAPL")));
        assert_eq!(q.as_of.as_deref(), Some("2026-11-23T10:00:00+00:00"));
        assert!(serde_urlencoded::from_str::<SummaryQuery>("client=7&client=8").is_err(), "a repeated parameter");
        assert!(serde_urlencoded::from_str::<SummaryQuery>("client=7&nope=1").is_err(), "an unknown parameter");
        assert!(serde_urlencoded::from_str::<SummaryQuery>("symbol=AAPL").is_err(), "no client");
    }
}
