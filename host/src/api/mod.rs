//! The HTTP API, compatible with the original Flask service, plus health and metrics.
//!
//! [`router`] builds the whole app from an [`AppState`]: handlers only talk to the backend
//! traits, so the app can be tested with `oneshot` or served on a real port ([`serve`],
//! which adds the connection-level bounds). Every route sits behind [`edge`]'s guards.

mod admin;
mod caller;
mod edge;
mod error;
mod health;
mod openapi;
mod records;
pub mod serve;
mod stream;
mod web;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Extension, MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post, put};

pub use admin::Admin;
pub use edge::RateLimit;
pub use error::ApiError;
pub use stream::{StreamBounds, StreamHub};
pub use web::WebPage;

use crate::auth::Authenticator;
use crate::backend::{EventLog, OrderStore, StatusCache};
use crate::config::HttpConfig;
use crate::pipeline::health::WorkerHealth;
use crate::telemetry::Metrics;

/// One pipeline as the API serves it under `/api/<name>`.
#[derive(Clone)]
pub struct PipelineRoute {
    /// The route segment and what its records are tagged with.
    pub name: String,
    /// The singular name of one record (`order`, `invoice`), used in answers.
    pub entity: String,
    /// Where its events are published (the pipeline's topic).
    pub events: Arc<dyn EventLog>,
}

impl PipelineRoute {
    /// The answer field holding a record's id: `order_id`, `invoice_id`.
    fn id_field(&self) -> String {
        format!("{}_id", self.entity)
    }
}

/// What every handler can reach: one shared [`SharedState`], so the copy that axum makes
/// for every middleware layer and extractor of every request is one reference count, not a
/// clone of each field (the profile of a cache-hit `GET` showed those clones and their
/// allocations at about a tenth of the API's CPU).
#[derive(Clone)]
pub struct AppState(Arc<SharedState>);

impl AppState {
    pub fn new(shared: SharedState) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.0
    }
}

/// The fields of [`AppState`].
pub struct SharedState {
    pub store: Arc<dyn OrderStore>,
    pub cache: Arc<dyn StatusCache>,
    /// The first pipeline's event log, which `/readyz` pings.
    pub events: Arc<dyn EventLog>,
    pub metrics: Arc<Metrics>,
    /// The pipelines whose routes are served (none in worker-only mode).
    pub pipelines: Vec<PipelineRoute>,
    /// The worker's outage state, when this process runs a worker.
    pub worker_health: Option<Arc<WorkerHealth>>,
    /// The admin API, when an admin token is configured.
    pub admin: Option<Admin>,
    /// What `/readyz` calls each backend: (event log, order store, status cache).
    pub backend_names: [&'static str; 3],
    /// The HTTP bounds (`[http]`).
    pub http: HttpConfig,
    /// The per-client rate limit, when `http.rate_limit_per_second` is set.
    pub rate_limit: Option<Arc<RateLimit>>,
    /// Who callers are (`[auth]`); open in `mode = "none"`.
    pub auth: Arc<Authenticator>,
    /// Where live order streams hear of recorded changes (the change feed, fanned out).
    pub stream_hub: Arc<StreamHub>,
    /// The open live order streams and their bounds (`[stream]`).
    pub streams: Arc<StreamBounds>,
    /// The order-tracking page at `/`, unless `web.enabled = false` or no pipeline is served.
    pub web: Option<Arc<WebPage>>,
}

/// The whole HTTP app.
pub fn router(state: AppState) -> Router {
    let max_body_bytes = state.http.max_body_bytes;
    let document = openapi::document_json(&state);
    let mut app = Router::new()
        .route(
            "/openapi.json",
            get(openapi::openapi_json).layer(Extension(document)),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics));
    for pipeline in &state.pipelines {
        let base = format!("/api/{}", pipeline.name);
        let routes = Router::new()
            .route(
                &base,
                post(records::create_order).get(records::list_records),
            )
            .route(&format!("{base}/{{order_id}}"), get(records::get_order))
            .route(
                &format!("{base}/{{order_id}}/events"),
                post(records::post_event),
            )
            .route(
                &format!("{base}/{{order_id}}/history"),
                get(records::get_history),
            )
            .route(&format!("{base}/stream"), get(stream::pipeline_stream))
            .route(
                &format!("{base}/{{order_id}}/stream"),
                get(stream::order_stream),
            )
            .layer(Extension(Arc::new(pipeline.clone())));
        app = app.merge(routes);
    }
    if let Some(page) = &state.web {
        app = app.merge(web::routes(page.clone()));
    }
    if let Some(admin) = &state.admin {
        let max_component = admin.deployer.max_component_bytes();
        let admin_routes = Router::new()
            .route("/api/plugins", get(admin::list_plugins))
            .route("/api/plugins/{name}", get(admin::get_plugin))
            .route(
                "/api/plugins/{name}/versions",
                post(admin::upload_version).layer(DefaultBodyLimit::max(max_component)),
            )
            .route("/api/plugins/{name}/active", put(admin::activate))
            .route("/api/plugins/{name}/limits", put(admin::set_limits))
            .route_layer(middleware::from_fn_with_state(
                state.clone(),
                admin::require_token,
            ));
        app = app.merge(admin_routes);
    }
    app.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            edge::body_read_timeout,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            edge::refuse_oversized,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            edge::request_timeout,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            edge::rate_limit,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            record_request,
        ))
        .with_state(state)
}

async fn not_found(request: Request) -> ApiError {
    ApiError::NotFound(format!(
        "no route for {} {}",
        request.method(),
        request.uri().path()
    ))
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::MethodNotAllowed(format!(
        "method {} is not allowed on {}",
        request.method(),
        request.uri().path()
    ))
}

/// The methods a metric names; any other is counted as `other`.
const METRIC_METHODS: [Method; 9] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
    Method::OPTIONS,
    Method::CONNECT,
    Method::TRACE,
];
/// The route label of a request no route matched.
const UNMATCHED_ROUTE: &str = "unmatched";

/// A request's method as a metric label: a known method, else `other`.
fn method_label(method: &Method) -> &'static str {
    METRIC_METHODS
        .iter()
        .find(|known| *known == method)
        .map_or("other", Method::as_str)
}

/// A status as a metric label: its class (`2xx` … `5xx`).
fn status_label(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Counts and times every request. Every label comes from a fixed set, whatever a client
/// sends: the method (or `other`), the route template (not the raw path, which would make
/// one series per order id; `unmatched` when no route matched) and the status class.
async fn record_request(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| UNMATCHED_ROUTE.to_owned());
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    state
        .metrics
        .http_requests
        .with_label_values(&[method, route.as_str(), status_label(response.status())])
        .inc();
    state
        .metrics
        .http_duration
        .with_label_values(&[route.as_str()])
        .observe(started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_labels_come_from_fixed_sets() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::from_bytes(b"FOO1").unwrap()), "other");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
        assert_eq!(status_label(StatusCode::CREATED), "2xx");
        assert_eq!(status_label(StatusCode::TOO_MANY_REQUESTS), "4xx");
        assert_eq!(status_label(StatusCode::SERVICE_UNAVAILABLE), "5xx");
    }
}
