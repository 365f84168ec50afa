//! The order-tracking page (`web/`, React + TypeScript) at `/`: its built files
//! (`web/dist`, embedded at compile time by `build.rs`), and `/web-config.json`, which tells the
//! page how people sign in here (the auth mode, the OIDC issuer and the page's public client).
//!
//! Every answer carries a strict Content-Security-Policy: scripts and styles only from this
//! host, connections only to this host and the issuer, no frames. Hashed assets are cached for
//! a year; the page itself and its configuration are always revalidated. Nothing here touches
//! the API routes or reads a backend.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Extension, Path};
use axum::http::header;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::{ApiError, AppState};
use crate::config::{AuthConfig, AuthMode, WebConfig};

/// The built page, `(path below web/dist, bytes)`, sorted by path.
static ASSETS: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

/// The page's entry point.
const INDEX: &str = "index.html";
/// Vite names every asset after its content: a changed file gets a new name.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// The page and its configuration: always asked again, so a new build shows at once.
const REVALIDATE: &str = "no-cache";

/// What `/web-config.json` answers and the policy every page answer carries.
pub struct WebPage {
    config_json: String,
    content_security_policy: HeaderValue,
}

impl WebPage {
    /// The page for this host's auth settings, showing the records of `pipeline`.
    pub fn new(web: &WebConfig, auth: &AuthConfig, pipeline: &str) -> anyhow::Result<WebPage> {
        let modes = auth.enabled_modes();
        let (sign_in, issuer) = if modes.contains(&AuthMode::Jwt) {
            ("jwt", Some(auth.jwt.issuer.as_str()))
        } else if auth.is_open() {
            ("none", None)
        } else {
            ("unavailable", None)
        };
        let mut config = json!({ "sign_in": sign_in, "pipeline": pipeline });
        if let Some(issuer) = issuer {
            config["issuer"] = json!(issuer);
            config["client_id"] = json!(web.client_id);
            config["scope"] = json!(web.scope);
        }
        let issuer_origin = issuer.map(origin_of).transpose()?;
        let policy = content_security_policy(issuer_origin.as_deref());
        Ok(WebPage {
            config_json: config.to_string(),
            content_security_policy: HeaderValue::from_str(&policy)?,
        })
    }
}

/// `scheme://host[:port]` of a URL: what a CSP source names.
fn origin_of(url: &str) -> anyhow::Result<String> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| anyhow::anyhow!("auth.jwt.issuer {url:?} is not a URL: {e}"))?;
    Ok(parsed.origin().ascii_serialization())
}

/// Only this host's scripts and styles; fetches to this host and the issuer (discovery, token
/// exchange and refresh); no plugins, frames, forms elsewhere or base-URL tricks.
fn content_security_policy(issuer_origin: Option<&str>) -> String {
    let connect = match issuer_origin {
        Some(origin) => format!("'self' {origin}"),
        None => "'self'".to_owned(),
    };
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src {connect}; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
}

/// The page's routes: `/`, `/assets/*`, `/web-config.json`.
pub(super) fn routes(page: Arc<WebPage>) -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/assets/{*path}", get(asset))
        .route("/web-config.json", get(web_config))
        .layer(Extension(page))
}

async fn index(Extension(page): Extension<Arc<WebPage>>) -> Result<Response, ApiError> {
    let body = embedded(INDEX).ok_or_else(|| {
        ApiError::NotFound("this host was built without the web page (cargo xtask web)".into())
    })?;
    Ok(answer(&page, INDEX, body, REVALIDATE))
}

async fn asset(
    Extension(page): Extension<Arc<WebPage>>,
    Path(path): Path<String>,
) -> Result<Response, ApiError> {
    let name = format!("assets/{path}");
    let body = embedded(&name)
        .ok_or_else(|| ApiError::NotFound(format!("no asset /{name} in this build of the page")))?;
    Ok(answer(&page, &name, body, IMMUTABLE))
}

async fn web_config(Extension(page): Extension<Arc<WebPage>>) -> Response {
    let mut response = answer(
        &page,
        "web-config.json",
        page.config_json.as_bytes(),
        REVALIDATE,
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn embedded(name: &str) -> Option<&'static [u8]> {
    ASSETS
        .binary_search_by(|(path, _)| (*path).cmp(name))
        .ok()
        .map(|index| ASSETS[index].1)
}

fn answer(page: &WebPage, name: &str, body: &[u8], cache: &'static str) -> Response {
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static(content_type(name)),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        (
            header::CONTENT_SECURITY_POLICY,
            page.content_security_policy.clone(),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
    ];
    (StatusCode::OK, headers, body.to_vec()).into_response()
}

/// The media type of a file the page's build writes, by its extension.
fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, extension)| extension) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_file_has_a_known_type() {
        assert!(embedded(INDEX).is_some(), "web/dist/index.html is embedded");
        for (path, _) in ASSETS {
            assert_ne!(content_type(path), "application/octet-stream", "{path}");
        }
    }

    #[test]
    fn policy_lets_the_page_reach_only_this_host_and_the_issuer() {
        let policy = content_security_policy(Some("http://127.0.0.1:18080"));
        assert!(policy.contains("connect-src 'self' http://127.0.0.1:18080;"));
        assert!(policy.contains("script-src 'self';"));
        assert!(!policy.contains("unsafe"));
        assert_eq!(
            origin_of("http://127.0.0.1:18080/realms/orderpipe").unwrap(),
            "http://127.0.0.1:18080"
        );
    }
}
