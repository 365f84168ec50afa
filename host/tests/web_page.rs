//! The order-tracking page as the host serves it (`api/web.rs`): the embedded build of `web/`
//! with its content types, cache headers and Content-Security-Policy, `/web-config.json` per
//! auth mode, and a 404 for an asset the build does not hold. The page's behaviour in a
//! browser is `cargo xtask web test`'s (web/tests/).

mod support;

use std::time::Duration;

use orderpipe::config::AuthMode;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{TestHost, config};

/// Every test here is bounded by this.
const TEST_LIMIT: Duration = Duration::from_secs(180);

async fn bounded<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(TEST_LIMIT, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {TEST_LIMIT:?}"))
}

fn issuer() -> String {
    let keycloak = std::env::var("ORDERPIPE_TEST_KEYCLOAK_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:18080".to_owned());
    format!("{keycloak}/realms/orderpipe")
}

async fn fetch(host: &TestHost, path: &str) -> reqwest::Response {
    host.http
        .get(host.url(path))
        .send()
        .await
        .expect("the host answers")
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .expect("a text header")
}

/// The `/assets/…` paths `index.html` loads.
fn asset_paths(index: &str) -> Vec<String> {
    index
        .split('"')
        .filter(|part| part.starts_with("/assets/"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_and_assets_are_served_with_their_types_cache_headers_and_policy() {
    bounded("page serving", async {
        let mut host = TestHost::start(config("order")).await;

        let page = fetch(&host, "/").await;
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
        assert_eq!(header(&page, "cache-control"), "no-cache");
        assert_eq!(header(&page, "x-content-type-options"), "nosniff");
        let policy = header(&page, "content-security-policy").to_owned();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self';",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ] {
            assert!(policy.contains(directive), "{directive} in {policy}");
        }
        assert!(!policy.contains("unsafe"), "{policy}");
        let index = page.text().await.expect("the page");
        assert!(index.contains(r#"<div id="root">"#), "{index}");

        let assets = asset_paths(&index);
        let expected_types = [
            (".js", "text/javascript; charset=utf-8"),
            (".css", "text/css; charset=utf-8"),
        ];
        for (extension, content_type) in expected_types {
            let path = assets
                .iter()
                .find(|path| path.ends_with(extension))
                .unwrap_or_else(|| panic!("index.html loads a {extension} asset: {assets:?}"));
            let asset = fetch(&host, path).await;
            assert_eq!(asset.status(), StatusCode::OK, "{path}");
            assert_eq!(header(&asset, "content-type"), content_type, "{path}");
            assert_eq!(
                header(&asset, "cache-control"),
                "public, max-age=31536000, immutable",
                "{path}"
            );
            assert_eq!(header(&asset, "content-security-policy"), policy);
            assert!(!asset.bytes().await.expect("the asset").is_empty());
        }

        let missing = fetch(&host, "/assets/no-such-file-0000.js").await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        let answer: Value = missing.json().await.expect("a JSON error");
        assert!(
            answer["error"].as_str().unwrap().contains("no-such-file"),
            "{answer}"
        );
        host.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_config_offers_the_development_sign_in_when_auth_is_none() {
    bounded("web config, none", async {
        let mut host = TestHost::start(config("order")).await;
        let answer = fetch(&host, "/web-config.json").await;
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(header(&answer, "content-type"), "application/json");
        assert_eq!(header(&answer, "cache-control"), "no-store");
        let body: Value = answer.json().await.expect("JSON");
        assert_eq!(body, json!({"sign_in": "none", "pipeline": "orders"}));
        host.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_config_names_the_issuer_and_client_in_jwt_mode_and_the_policy_lets_the_page_reach_it()
{
    bounded("web config, jwt", async {
        let mut config = config("order");
        config.auth.mode = Some(AuthMode::Jwt);
        config.auth.jwt.issuer = issuer();
        config.web.client_id = "orderpipe-web".into();
        let mut host = TestHost::start(config).await;

        let answer = fetch(&host, "/web-config.json").await;
        assert_eq!(answer.status(), StatusCode::OK);
        let issuer_origin = issuer().trim_end_matches("/realms/orderpipe").to_owned();
        let policy = header(&answer, "content-security-policy").to_owned();
        assert!(
            policy.contains(&format!("connect-src 'self' {issuer_origin};")),
            "{policy}"
        );
        let body: Value = answer.json().await.expect("JSON");
        assert_eq!(
            body,
            json!({
                "sign_in": "jwt",
                "pipeline": "orders",
                "issuer": issuer(),
                "client_id": "orderpipe-web",
                "scope": "openid",
            })
        );
        // The page is public; the API behind it is not.
        assert_eq!(fetch(&host, "/").await.status(), StatusCode::OK);
        assert_eq!(
            fetch(&host, "/api/orders").await.status(),
            StatusCode::UNAUTHORIZED
        );
        host.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_with_the_page_disabled_serves_none_of_it() {
    bounded("page disabled", async {
        let mut config = config("order");
        config.web.enabled = false;
        let mut host = TestHost::start(config).await;
        for path in ["/", "/web-config.json"] {
            assert_eq!(
                fetch(&host, path).await.status(),
                StatusCode::NOT_FOUND,
                "{path}"
            );
        }
        assert_eq!(fetch(&host, "/healthz").await.status(), StatusCode::OK);
        host.stop().await;
    })
    .await;
}
