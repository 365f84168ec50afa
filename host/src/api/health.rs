//! `/healthz` (the process is alive), `/readyz` (every backend answers) and `/metrics`.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Map, Value, json};

use super::AppState;
use crate::backend::BackendResult;

/// How long one readiness check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// Answers while the process runs.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = super::openapi::Health)))]
pub(super) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn check(
    name: &str,
    probe: impl std::future::Future<Output = BackendResult<()>>,
) -> (String, Option<String>) {
    let problem = match tokio::time::timeout(CHECK_TIMEOUT, probe).await {
        Ok(Ok(())) => None,
        // The driver's message goes to the log; the answer names the backend only.
        Ok(Err(error)) => {
            tracing::warn!(check = name, %error, "readiness check failed");
            Some(format!("{name} unavailable"))
        }
        Err(_) => Some(format!(
            "{name} did not answer within {} s",
            CHECK_TIMEOUT.as_secs()
        )),
    };
    (name.to_owned(), problem)
}

/// Whether every backend (and the worker) answers.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = super::openapi::Ready),
        (status = 503, description = "Something is down", body = super::openapi::NotReady),
    ))]
pub(super) async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let [log_name, store_name, cache_name] = state.backend_names;
    let (event_log, order_store, status_cache) = tokio::join!(
        check(log_name, state.events.ping()),
        check(store_name, state.store.ping()),
        check(cache_name, state.cache.ping()),
    );
    let mut checks = Map::new();
    let mut down = Vec::new();
    for (name, problem) in [event_log, order_store, status_cache] {
        match problem {
            None => {
                checks.insert(name, json!("ok"));
            }
            Some(problem) => {
                checks.insert(name.clone(), json!(problem));
                down.push(name);
            }
        }
    }
    if let Some(health) = &state.worker_health {
        match health.paused_because() {
            None => {
                checks.insert("worker".into(), json!("ok"));
            }
            Some(reason) => {
                checks.insert("worker".into(), json!(format!("paused: {reason}")));
                down.push("worker".into());
            }
        }
    }
    if down.is_empty() {
        (
            StatusCode::OK,
            Json(json!({ "status": "ready", "checks": checks })),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "error": format!("not ready: {} unavailable", down.join(", ")),
                "checks": checks,
            })),
        )
    }
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Every metric", body = String, content_type = "text/plain")))]
pub(super) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
