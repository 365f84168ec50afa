//! The OpenAPI 3.1 document of the whole HTTP API, served at `/openapi.json`.
//!
//! It is generated from the code: every handler carries its `#[utoipa::path]` (method, path,
//! parameters, body, answers), request bodies are the types the handlers parse, and the
//! answers are described by the types below. The record routes are written once as
//! `/api/{pipeline}/…` and expanded here into each configured pipeline's own paths
//! (`/api/orders`, `/api/invoices`, …), exactly the routes [`super::router`] serves; admin
//! routes appear only when the admin API is enabled, with their bearer security. Errors every
//! route can meet (`400`, `404`, `405`, `408`, `413`, `429`, `503`) are added to every
//! operation here, so no handler can forget one. `tests/http_edge.rs` checks on a live host
//! that every documented operation is routed, and schemathesis (`cargo xtask schemathesis`)
//! that every answer conforms (the live streams, `text/event-stream`, aside: their bodies
//! last until `stream.max_lifetime_ms`, see `xtask/src/schemathesis.rs`). With `[auth]` modes
//! other than `none`, the document declares the bearer JWT and API key schemes the host
//! accepts, states them on every record route and adds their `401`/`403` answers; in `none`
//! mode the record routes are open and say nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::Extension;

use serde::Serialize;
use serde_json::{Value, json};
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, Http, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};
use uuid::Uuid;

use super::AppState;
use crate::order::{LineItem, OrderRequest, Outcome};

/// The placeholder the record routes are written with.
const PIPELINE_PLACEHOLDER: &str = "{pipeline}";
/// The prefix of every admin route.
const ADMIN_PREFIX: &str = "/api/plugins";
/// The name of the admin routes' security scheme.
pub(super) const ADMIN_SECURITY: &str = "admin_token";
/// The name of the bearer JWT security scheme (`[auth] mode = "jwt"`).
const JWT_SECURITY: &str = "bearer_jwt";
/// The name of the API key security scheme (`[auth] mode = "api_keys"`).
const API_KEY_SECURITY: &str = "api_key";
/// The answers a record route gains when credentials are required.
const AUTH_ERRORS: [(u16, &str); 2] = [
    (
        401,
        "No credential, or one that proves nothing (bad signature, expired, another audience);          see WWW-Authenticate",
    ),
    (
        403,
        "A valid credential whose role may not do this (e.g. a customer posting payment_received)",
    ),
];

/// `{"error": "..."}`: every refusal and failure, naming the problem.
#[derive(Serialize, ToSchema)]
pub(super) struct ErrorBody {
    error: String,
}

/// `201`: the record is accepted (its event log acknowledged it). Besides `message`, the
/// answer holds the new record's id as `<entity>_id` (`order_id`, `invoice_id`).
#[derive(Serialize, ToSchema)]
pub(super) struct Created {
    /// `Order created successfully` (`Invoice created successfully`, …).
    message: String,
}

/// A record as `GET /api/<pipeline>/<id>` shows it, with its id as `<entity>_id`.
#[derive(Serialize, ToSchema)]
pub(super) struct RecordView {
    status: String,
    /// The number of events recorded for it so far.
    version: u64,
    customer: Option<String>,
    items: Vec<LineItem>,
    currency: Option<String>,
    #[schema(value_type = Object)]
    attributes: serde_json::Map<String, Value>,
    created_at_ms: i64,
    updated_at_ms: i64,
}

/// `202`: the event is in the record's event log; the worker decides it soon. The answer
/// also holds the record's id as `<entity>_id`.
#[derive(Serialize, ToSchema)]
pub(super) struct EventAccepted {
    event_id: Uuid,
    /// `Event accepted`.
    message: String,
}

/// One recorded event.
#[derive(Serialize, ToSchema)]
pub(super) struct HistoryItem {
    /// 1 for the first recorded event; the record's version after it.
    seq: u64,
    event_id: Uuid,
    event_type: String,
    outcome: Outcome,
    from: String,
    to: String,
    /// When it was recorded (RFC 3339).
    #[schema(format = DateTime)]
    at: String,
    reason: String,
    plugin: String,
    plugin_version: String,
}

/// One page of a record's history, oldest first. The answer also holds the record's id as
/// `<entity>_id`.
#[derive(Serialize, ToSchema)]
pub(super) struct HistoryPage {
    history: Vec<HistoryItem>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    next_cursor: Option<String>,
}

/// One page of the caller's records, newest first.
#[derive(Serialize, ToSchema)]
pub(super) struct RecordPage {
    /// Each record as `GET /api/<pipeline>/<id>` shows it.
    records: Vec<RecordView>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    next_cursor: Option<String>,
}

/// `GET /healthz`.
#[derive(Serialize, ToSchema)]
pub(super) struct Health {
    /// `ok`.
    status: String,
}

/// `GET /readyz` when every backend answers.
#[derive(Serialize, ToSchema)]
pub(super) struct Ready {
    /// `ready`.
    status: String,
    /// Each backend (and the worker): `ok`, or what is wrong.
    #[schema(value_type = Object)]
    checks: serde_json::Map<String, Value>,
}

/// `GET /readyz` when something is down.
#[derive(Serialize, ToSchema)]
pub(super) struct NotReady {
    /// `not ready: <what> unavailable`.
    error: String,
    #[schema(value_type = Object)]
    checks: serde_json::Map<String, Value>,
}

/// A stored plugin version.
#[derive(Serialize, ToSchema)]
pub(super) struct Uploaded {
    name: String,
    version: String,
    sha256: String,
}

/// `GET /api/plugins`.
#[derive(Serialize, ToSchema)]
pub(super) struct PluginList {
    /// Each plugin: `name`, `active` version, `limits`, `limit_sources`.
    #[schema(value_type = Vec<Object>)]
    plugins: Vec<Value>,
    #[schema(value_type = Object)]
    default_limits: Value,
}

/// `GET /api/plugins/<name>`.
#[derive(Serialize, ToSchema)]
pub(super) struct PluginDetail {
    name: String,
    /// The active version, if any.
    active: Value,
    #[schema(value_type = Vec<Object>)]
    versions: Vec<Value>,
    #[schema(value_type = Object)]
    limits: Value,
    #[schema(value_type = Object)]
    limit_sources: Value,
}

/// `PUT /api/plugins/<name>/active`.
#[derive(Serialize, ToSchema)]
pub(super) struct Activated {
    name: String,
    active: String,
    sha256: String,
}

/// `PUT /api/plugins/<name>/limits`: a partial change. A number overrides the limit, `null`
/// restores its default, an absent field is kept.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct LimitsChange {
    #[schema(minimum = 1)]
    fuel: Option<u64>,
    #[schema(minimum = 1)]
    memory_mib: Option<u64>,
    #[schema(minimum = 1)]
    timeout_ms: Option<u64>,
    host_calls: Option<u64>,
}

/// A plugin's effective limits and where each comes from.
#[derive(Serialize, ToSchema)]
pub(super) struct PluginLimits {
    name: String,
    #[schema(value_type = Object)]
    limits: Value,
    #[schema(value_type = Object)]
    limit_sources: Value,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "orderpipe",
        description = "An order pipeline whose business logic lives in sandboxed WebAssembly \
                       plugins. Every error is JSON: {\"error\": \"...\"}."
    ),
    paths(
        super::records::create_order,
        super::records::list_records,
        super::records::get_order,
        super::records::post_event,
        super::records::get_history,
        super::stream::order_stream,
        super::stream::pipeline_stream,
        super::health::healthz,
        super::health::readyz,
        super::health::metrics,
        openapi_json,
        super::admin::list_plugins,
        super::admin::get_plugin,
        super::admin::upload_version,
        super::admin::activate,
        super::admin::set_limits,
    ),
    components(schemas(ErrorBody, OrderRequest, LineItem, Outcome)),
    modifiers(&AdminSecurity)
)]
struct ApiDoc;

/// Declares the admin routes' bearer token.
struct AdminSecurity;

impl Modify for AdminSecurity {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            ADMIN_SECURITY,
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// `GET /openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document of this host's API", body = Object))
)]
pub(super) async fn openapi_json(Extension(document): Extension<Arc<Value>>) -> Json<Value> {
    Json(document.as_ref().clone())
}

/// Every operation of a path item.
fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// Links the `201` of each pipeline's `POST /api/<name>` to the operations on the new record,
/// so a client (and schemathesis' stateful phase) knows where its id goes. Written as JSON:
/// utoipa 5 serializes a link's `operationId` as `operation_id`.
fn link_created_records(state: &AppState, document: &mut Value) {
    for pipeline in &state.pipelines {
        let created = document
            .pointer_mut(&format!(
                "/paths/~1api~1{}/post/responses/201",
                pipeline.name
            ))
            .and_then(Value::as_object_mut);
        let Some(created) = created else {
            continue;
        };
        let mut links = serde_json::Map::new();
        for operation in ["get_order", "post_event", "get_history"] {
            let operation_id = format!("{}_{operation}", pipeline.name);
            links.insert(
                operation_id.clone(),
                json!({
                    "operationId": operation_id,
                    "parameters": {"order_id": format!("$response.body#/{}", pipeline.id_field())},
                }),
            );
        }
        created.insert("links".into(), Value::Object(links));
    }
}

/// The errors any operation can answer, beside its own.
const COMMON_ERRORS: [(u16, &str); 7] = [
    (400, "Malformed input, named in the error"),
    (404, "Unknown route or record"),
    (405, "Method not allowed on this route"),
    (
        408,
        "The body arrived too slowly, or the request took too long",
    ),
    (413, "The body is over the limit"),
    (429, "Too many requests from this client; see Retry-After"),
    (503, "A backend is unavailable (named); see Retry-After"),
];

/// The document as this host serves it, as JSON.
pub(super) fn document_json(state: &AppState) -> Arc<Value> {
    let mut document = serde_json::to_value(document(state)).unwrap_or_default();
    link_created_records(state, &mut document);
    Arc::new(document)
}

/// The document as this host serves it: its pipelines' routes, the admin routes if enabled.
fn document(state: &AppState) -> Document {
    let mut doc = ApiDoc::openapi();
    let paths = std::mem::take(&mut doc.paths.paths);
    let mut expanded = BTreeMap::new();
    for (path, item) in paths {
        if path.contains(PIPELINE_PLACEHOLDER) {
            for pipeline in &state.pipelines {
                let mut item = item.clone();
                for operation in operations(&mut item) {
                    if let Some(parameters) = &mut operation.parameters {
                        parameters.retain(|parameter| parameter.name != "pipeline");
                    }
                    operation.operation_id = operation
                        .operation_id
                        .take()
                        .map(|id| format!("{}_{id}", pipeline.name));
                    operation.tags = Some(vec![pipeline.name.clone()]);
                }
                expanded.insert(path.replace(PIPELINE_PLACEHOLDER, &pipeline.name), item);
            }
        } else if !path.starts_with(ADMIN_PREFIX) || state.admin.is_some() {
            expanded.insert(path, item);
        }
    }
    let schemes = declare_auth_schemes(state, &mut doc);
    for (path, item) in expanded.iter_mut() {
        let is_record_route = path.starts_with("/api/") && !path.starts_with(ADMIN_PREFIX);
        let is_admin_route = path.starts_with(ADMIN_PREFIX);
        for operation in operations(item) {
            if !schemes.is_empty() && is_record_route {
                operation.security = Some(
                    schemes
                        .iter()
                        .map(|scheme| SecurityRequirement::new(*scheme, Vec::<String>::new()))
                        .collect(),
                );
                add_errors(operation, &AUTH_ERRORS);
            }
            if is_admin_route && schemes.contains(&JWT_SECURITY) {
                operation
                    .security
                    .get_or_insert_with(Vec::new)
                    .push(SecurityRequirement::new(JWT_SECURITY, Vec::<String>::new()));
            }
            add_errors(operation, &COMMON_ERRORS);
        }
    }
    doc.paths.paths = expanded.into_iter().collect();
    doc
}

/// Declares the schemes `[auth]` accepts and returns their names (none in `none` mode).
fn declare_auth_schemes(state: &AppState, doc: &mut Document) -> Vec<&'static str> {
    let mut schemes = Vec::new();
    let components = doc.components.get_or_insert_with(Default::default);
    if state.auth.accepts_jwt() {
        components.add_security_scheme(
            JWT_SECURITY,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token of the configured issuer (auth.jwt): customers, \
                         services (client credentials) and admins, by the roles claim",
                    ))
                    .build(),
            ),
        );
        schemes.push(JWT_SECURITY);
    }
    if state.auth.accepts_api_keys() {
        components.add_security_scheme(
            API_KEY_SECURITY,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Api-Key",
                "A service's key ([[auth.api_keys]])",
            ))),
        );
        schemes.push(API_KEY_SECURITY);
    }
    schemes
}

/// Adds each (status, description) answer with an `ErrorBody` unless the operation has one.
fn add_errors(operation: &mut Operation, errors: &[(u16, &str)]) {
    for (status, description) in errors {
        operation
            .responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| {
                ResponseBuilder::new()
                    .description(*description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build()
                    .into()
            });
    }
}
