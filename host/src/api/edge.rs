//! The request-level guards every route sits behind: the per-client rate limit (`429` with
//! `Retry-After`), a declared body over the route's limit (`413`, before any of it is read),
//! the pause allowed while a body arrives and the whole request's time (`408`). Connection-level bounds (connections, request heads, idle keep-alive) live in
//! [`super::serve`]. Each guard answers with the API's JSON error, never a bare status.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio_util::sync::CancellationToken;
use tower_http::timeout::TimeoutBody;

use super::{ApiError, AppState};
use crate::config::HttpConfig;

/// How often the rate limiter forgets clients whose buckets are full again, so its memory
/// follows the clients of the last moments, not every address ever seen.
const RATE_LIMIT_PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// Requests per second and burst per client address (governor's keyed token buckets).
pub struct RateLimit {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

impl RateLimit {
    /// The limit `[http]` asks for, or `None` when `rate_limit_per_second` is 0 (off).
    pub fn from_config(config: &HttpConfig) -> Option<Arc<Self>> {
        let rate = NonZeroU32::new(config.rate_limit_per_second)?;
        let burst = NonZeroU32::new(config.rate_limit_burst).unwrap_or(rate);
        Some(Arc::new(Self {
            limiter: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
            clock: DefaultClock::default(),
        }))
    }

    /// `Ok` when `client` may make a request now, else how long until it may.
    fn check(&self, client: IpAddr) -> Result<(), Duration> {
        self.limiter
            .check_key(&client)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Forgets idle clients every [`RATE_LIMIT_PRUNE_INTERVAL`] until `shutdown`.
    pub fn spawn_pruning(self: &Arc<Self>, shutdown: CancellationToken) {
        let limit = self.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(RATE_LIMIT_PRUNE_INTERVAL);
            loop {
                tokio::select! {
                    _ = interval.tick() => limit.limiter.retain_recent(),
                    () = shutdown.cancelled() => return,
                }
            }
        });
    }
}

/// Answers `429` with `Retry-After` (whole seconds, rounded up) to a client over its rate.
/// Requests without a peer address (in-process tests) are not limited.
pub(super) async fn rate_limit(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let (Some(limit), Some(ConnectInfo(peer))) = (
        state.rate_limit.as_ref(),
        request.extensions().get::<ConnectInfo<SocketAddr>>(),
    ) else {
        return next.run(request).await;
    };
    match limit.check(peer.ip()) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let seconds = seconds.max(1);
            let mut response = ApiError::TooManyRequests(format!(
                "too many requests from {}: at most {} per second (bursts of {}); retry in {seconds} s",
                peer.ip(),
                state.http.rate_limit_per_second,
                state.http.rate_limit_burst,
            ))
            .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            response
        }
    }
}

/// Wraps the request body so a pause longer than `body_read_timeout_ms` between two of its
/// pieces fails the read (answered `408` by whoever reads it).
pub(super) async fn body_read_timeout(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let timeout = Duration::from_millis(state.http.body_read_timeout_ms);
    next.run(request.map(|body| Body::new(TimeoutBody::new(timeout, body))))
        .await
}

/// Whether a failed body read was the body read timeout.
pub(super) fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(error) = source {
        if error.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        source = error.source();
    }
    false
}

/// Answers `408` when a request takes longer than its route's limit (the handler's work is
/// dropped): `upload_timeout_ms` for plugin uploads, `request_timeout_ms` for the rest.
pub(super) async fn request_timeout(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let limit = if is_plugin_upload(&request) {
        state.http.upload_timeout_ms
    } else {
        state.http.request_timeout_ms
    };
    match tokio::time::timeout(Duration::from_millis(limit), next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::RequestTimeout(format!("the request took longer than {limit} ms"))
            .into_response(),
    }
}

/// How much of a refused request's body is read and dropped after the answer.
const LINGER_BYTES: usize = 1024 * 1024;
/// How long a refused request's connection stays open for its client to read the answer.
const LINGER_TIME: Duration = Duration::from_secs(2);

/// The answer to a request refused before its body was read: sent at once, with
/// `Connection: close`. The body is then read and dropped in the background (at most
/// [`LINGER_BYTES`] for [`LINGER_TIME`]), so that a client still sending is not reset before
/// it reads the answer (closing a socket with unread data sends a reset, which can overtake
/// the answer); a client sending more than that is cut off once it has had its answer.
pub(super) fn refuse_before_body(error: ApiError, body: Body) -> Response {
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    tokio::spawn(async move {
        let _ = tokio::time::timeout(LINGER_TIME, axum::body::to_bytes(body, LINGER_BYTES)).await;
    });
    response
}

/// Whether the matched route is the plugin upload (`POST /api/plugins/{name}/versions`).
fn is_plugin_upload(request: &Request) -> bool {
    request.method() == axum::http::Method::POST
        && request
            .extensions()
            .get::<MatchedPath>()
            .is_some_and(|path| path.as_str().ends_with("/versions"))
}

/// The body limit of the matched route: the component limit for plugin uploads, the common
/// `http.max_body_bytes` for every other route.
fn route_body_limit(state: &AppState, request: &Request) -> usize {
    match (is_plugin_upload(request), &state.admin) {
        (true, Some(admin)) => admin.deployer.max_component_bytes(),
        _ => state.http.max_body_bytes,
    }
}

/// Answers `413` to a request whose declared `Content-Length` is over its route's limit,
/// from the headers alone (a body without a declared length is cut at the limit as it is read).
pub(super) async fn refuse_oversized(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let limit = route_body_limit(&state, &request);
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(length) if length > limit as u64 => refuse_before_body(
            ApiError::PayloadTooLarge(format!(
                "the request body is larger than the limit: {length} bytes declared, over the \
                 limit of {limit} bytes for this route"
            )),
            request.into_body(),
        ),
        _ => next.run(request).await,
    }
}
