//! The admin API: upload, list and activate plugin versions, and set each plugin's limits.
//! Every route requires `Authorization: Bearer <admin.token>` (compared in constant time), or
//! with `[auth] mode = "jwt"` a token carrying the admin role;
//! without a configured token the routes do not exist. A request without the token, or
//! declaring a body over its route's limit, is answered from its headers alone, before any
//! of its body is read. Limits are shown as this host computes them from the shared
//! registry's overrides and its own configured defaults.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq as _;

use super::edge::refuse_before_body;
use super::{ApiError, AppState};
use crate::plugin::{DeployError, EffectiveLimits, LimitsChange, PluginDeployer};

/// What the admin routes need besides the common state.
#[derive(Clone)]
pub struct Admin {
    pub token: String,
    pub deployer: Arc<PluginDeployer>,
}

impl From<DeployError> for ApiError {
    fn from(error: DeployError) -> Self {
        match error {
            DeployError::Invalid(reason) => {
                ApiError::Unprocessable(format!("invalid plugin component: {reason}"))
            }
            DeployError::NotFound(reason) => ApiError::NotFound(reason),
            DeployError::InvalidLimits(reason) => {
                ApiError::Unprocessable(format!("invalid plugin limits: {reason}"))
            }
            DeployError::Conflict(reason) => ApiError::Conflict(reason),
            DeployError::Backend(error) => error.into(),
        }
    }
}

fn admin(state: &AppState) -> Result<&Admin, ApiError> {
    state
        .admin
        .as_ref()
        .ok_or_else(|| ApiError::NotFound("the admin API is not enabled".into()))
}

/// Compares in constant time (`subtle`), so the token cannot be guessed byte by byte from
/// timings. Only the length can leak, and every accepted token is at least
/// `MIN_ADMIN_TOKEN_BYTES` long.
fn same_token(given: &[u8], expected: &[u8]) -> bool {
    given.ct_eq(expected).into()
}

/// Refuses requests without the admin bearer token from the headers alone: nothing of the
/// body is read first (a declared length over the route's limit was refused before this, by
/// `edge::refuse_oversized`).
pub(super) async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, Response> {
    let admin = admin(&state).map_err(IntoResponse::into_response)?;
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let refused = match given {
        Some(token) if same_token(token.as_bytes(), admin.token.as_bytes()) => {
            return Ok(next.run(request).await);
        }
        // With `[auth] mode = "jwt"`, a token carrying the admin role is an admin too.
        Some(token) if !state.auth.is_open() => {
            let credentials = crate::auth::Credentials {
                bearer: Some(token),
                api_key: None,
            };
            match state.auth.identify(credentials).await {
                Ok(crate::auth::Caller::Admin) => return Ok(next.run(request).await),
                Ok(_) => ApiError::Forbidden("the admin API needs the admin role".into()),
                Err(error) => error.into(),
            }
        }
        Some(_) => ApiError::Unauthorized("the admin token is wrong".into()),
        None => {
            ApiError::Unauthorized("the admin API needs `Authorization: Bearer <token>`".into())
        }
    };
    Err(refuse_before_body(refused, request.into_body()))
}

/// Uploads a plugin version (a component), validated before it is stored.
#[utoipa::path(
    post,
    path = "/api/plugins/{name}/versions",
    tag = "admin",
    security(("admin_token" = [])),
    params(("name" = String, Path, description = "The plugin's name", example = "order")),
    request_body(content = Vec<u8>, content_type = "application/wasm", description = "The component's bytes"),
    responses(
        (status = 201, description = "Stored", body = super::openapi::Uploaded),
        (status = 200, description = "This version was stored before with the same bytes", body = super::openapi::Uploaded),
        (status = 401, description = "No admin token, or a wrong one", body = super::openapi::ErrorBody),
        (status = 409, description = "This version was stored with other bytes", body = super::openapi::ErrorBody),
        (status = 415, description = "Not `application/wasm`", body = super::openapi::ErrorBody),
        (status = 422, description = "Not a valid plugin component", body = super::openapi::ErrorBody),
    )
)]
pub(super) async fn upload_version(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let admin = admin(&state)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let limit = admin.deployer.max_component_bytes();
    let too_large =
        || ApiError::PayloadTooLarge(format!("the component is over the limit of {limit} bytes"));
    // A declared length over the limit was refused before this handler (`edge::refuse_oversized`).
    if content_type != "application/wasm" {
        let refused = ApiError::UnsupportedMediaType(format!(
            "upload the component with `Content-Type: application/wasm` (got {content_type:?})"
        ));
        return Ok(refuse_before_body(refused, body));
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|error| {
        let over_limit = std::error::Error::source(&error)
            .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
        if over_limit {
            too_large()
        } else if super::edge::is_body_timeout(&error) {
            ApiError::RequestTimeout("the component arrived too slowly".into())
        } else {
            ApiError::BadRequest(format!("could not read the component: {error}"))
        }
    })?;
    let uploaded = admin.deployer.upload(&name, &bytes).await?;
    let status = if uploaded.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(json!({
            "name": uploaded.version.name,
            "version": uploaded.version.version,
            "sha256": uploaded.version.sha256,
        })),
    )
        .into_response())
}

/// `limits` (the effective values) and `limit_sources` (default, config or override), as
/// the plugin routes show them.
fn limits_json(effective: &EffectiveLimits) -> (Value, Value) {
    (json!(effective.limits), json!(effective.sources))
}

/// Every plugin: its active version and effective limits, and the host's default limits.
#[utoipa::path(
    get,
    path = "/api/plugins",
    tag = "admin",
    security(("admin_token" = [])),
    responses((status = 200, description = "The plugins", body = super::openapi::PluginList), (status = 401, description = "No admin token, or a wrong one", body = super::openapi::ErrorBody))
)]
pub(super) async fn list_plugins(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let admin = admin(&state)?;
    let mut plugins = Vec::new();
    for (name, active) in admin.deployer.registry().plugins().await? {
        let (limits, sources) = limits_json(&admin.deployer.effective_limits(&name).await?);
        plugins.push(json!({
            "name": name,
            "active": active.map(|a| a.version),
            "limits": limits,
            "limit_sources": sources,
        }));
    }
    Ok(Json(json!({
        "plugins": plugins,
        "default_limits": admin.deployer.limit_policy().defaults(),
    })))
}

/// One plugin: its versions, the active one and its effective limits.
#[utoipa::path(
    get,
    path = "/api/plugins/{name}",
    tag = "admin",
    security(("admin_token" = [])),
    params(("name" = String, Path, description = "The plugin's name", example = "order")),
    responses((status = 200, description = "The plugin", body = super::openapi::PluginDetail), (status = 401, description = "No admin token, or a wrong one", body = super::openapi::ErrorBody))
)]
pub(super) async fn get_plugin(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let admin = admin(&state)?;
    let registry = admin.deployer.registry();
    let versions = registry.versions(&name).await?;
    if versions.is_empty() {
        return Err(ApiError::NotFound(format!("plugin {name} has no versions")));
    }
    let active = registry.active(&name).await?;
    let (limits, sources) = limits_json(&admin.deployer.effective_limits(&name).await?);
    Ok(Json(json!({
        "name": name,
        "active": active,
        "versions": versions,
        "limits": limits,
        "limit_sources": sources,
    })))
}

/// `PUT /api/plugins/<name>/limits`: a partial change of the plugin's overrides (a number
/// sets one, `null` restores the default, an absent field is kept). Malformed JSON is `400`;
/// an unknown field, a wrong type or a value out of bounds is `422` and changes nothing.
#[utoipa::path(
    put,
    path = "/api/plugins/{name}/limits",
    tag = "admin",
    security(("admin_token" = [])),
    params(("name" = String, Path, description = "The plugin's name", example = "order")),
    request_body(content = super::openapi::LimitsChange, content_type = "application/json"),
    responses(
        (status = 200, description = "The plugin's limits now", body = super::openapi::PluginLimits),
        (status = 401, description = "No admin token, or a wrong one", body = super::openapi::ErrorBody),
        (status = 422, description = "An unknown field, a wrong type, an empty change or a value out of bounds", body = super::openapi::ErrorBody),
    )
)]
pub(super) async fn set_limits(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let admin = admin(&state)?;
    let bytes = body.map_err(|rejection| {
        ApiError::BadRequest(format!("could not read the body: {rejection}"))
    })?;
    let change = parse_limits_change(&bytes)?;
    let effective = admin.deployer.set_limits(&name, &change).await?;
    let (limits, sources) = limits_json(&effective);
    Ok(Json(
        json!({ "name": name, "limits": limits, "limit_sources": sources }),
    ))
}

fn parse_limits_change(bytes: &[u8]) -> Result<LimitsChange, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let change: LimitsChange =
        serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
            let path = error.path().to_string();
            let inner = error.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                ApiError::BadRequest(format!("malformed JSON: {inner}"))
            } else if path == "." {
                ApiError::Unprocessable(format!("invalid plugin limits: {inner}"))
            } else {
                ApiError::Unprocessable(format!("invalid plugin limit `{path}`: {inner}"))
            }
        })?;
    deserializer
        .end()
        .map_err(|error| ApiError::BadRequest(format!("malformed JSON: {error}")))?;
    Ok(change)
}

/// The body of `PUT /api/plugins/<name>/active`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Activation {
    version: String,
}

/// Activates (or rolls back to) a stored version on every host.
#[utoipa::path(
    put,
    path = "/api/plugins/{name}/active",
    tag = "admin",
    security(("admin_token" = [])),
    params(("name" = String, Path, description = "The plugin's name", example = "order")),
    request_body(content = Activation, content_type = "application/json"),
    responses((status = 200, description = "Activated", body = super::openapi::Activated), (status = 401, description = "No admin token, or a wrong one", body = super::openapi::ErrorBody))
)]
pub(super) async fn activate(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let admin = admin(&state)?;
    let bytes = body.map_err(|rejection| {
        ApiError::BadRequest(format!("could not read the body: {rejection}"))
    })?;
    let activation: Activation = super::records::parse_json(&bytes)?;
    let active = admin.deployer.activate(&name, &activation.version).await?;
    Ok(Json(
        json!({ "name": active.name, "active": active.version, "sha256": active.sha256 }),
    ))
}
