//! HTTP replies shared by the routes: plain text with a status, JSON, and an access refusal.

use std::sync::atomic::Ordering::Relaxed;

use warp::Reply;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::access::Refusal;
use crate::metrics::Metrics;

pub fn text(status: StatusCode, body: impl Into<String>) -> Response {
    warp::reply::with_status(body.into(), status).into_response()
}

pub fn json<T: serde::Serialize>(value: &T) -> Response {
    warp::reply::json(value).into_response()
}

/// 401 without a valid token, 403 for another client or origin; counted in `rest_refused_total`.
pub fn refusal(metrics: &Metrics, r: &Refusal) -> Response {
    metrics.rest_refused.fetch_add(1, Relaxed);
    let status = match r {
        Refusal::NoToken | Refusal::BadToken(_) => StatusCode::UNAUTHORIZED,
        Refusal::Origin(_) | Refusal::OtherClient { .. } => StatusCode::FORBIDDEN,
    };
    text(status, format!("{r}\n"))
}
