//! Authentication and roles end to end: real hosts (real Kafka, Cassandra and Redis) with
//! `[auth] mode = "jwt"` against the real Keycloak of `cargo xtask servers up` (realm
//! `orderpipe`, xtask/keycloak/orderpipe-realm.json). Every accepted token comes from
//! Keycloak's token endpoint; the refused ones are Keycloak's for another audience, or made
//! here with a key Keycloak never published (tests/fixtures/foreign-rsa-key.pem).

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use orderpipe::config::{ApiKeyConfig, AuthMode, Config, PipelineConfig};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{TestHost, config};
use uuid::Uuid;

/// Every test here is bounded by this.
const TEST_LIMIT: Duration = Duration::from_secs(180);
/// A key no issuer knows: it signs the tokens the host must refuse.
const FOREIGN_PRIVATE_KEY: &str = include_str!("fixtures/foreign-rsa-key.pem");
const FOREIGN_PUBLIC_KEY: &str = include_str!("fixtures/foreign-rsa-key.pub.pem");
/// The warehouse's API key in the api-key test (its digest is what the host is given).
const WAREHOUSE_KEY: &str = "warehouse-test-key-4f1c2b9a";

async fn bounded<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(TEST_LIMIT, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {TEST_LIMIT:?}"))
}

fn keycloak() -> String {
    std::env::var("ORDERPIPE_TEST_KEYCLOAK_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:18080".to_owned())
}

fn issuer() -> String {
    format!("{}/realms/orderpipe", keycloak())
}

/// A host configuration accepting the Keycloak realm's tokens; payments may post
/// `payment_received` and warehouse `shipped` on orders.
fn jwt_config() -> Config {
    let mut config = config("order");
    config.auth.mode = Some(AuthMode::Jwt);
    config.auth.jwt.issuer = issuer();
    config.auth.jwt.audience = "orderpipe".into();
    config.auth.services = BTreeMap::from([
        (
            "payments".to_owned(),
            BTreeMap::from([("orders".to_owned(), vec!["payment_received".to_owned()])]),
        ),
        (
            "warehouse".to_owned(),
            BTreeMap::from([("orders".to_owned(), vec!["shipped".to_owned()])]),
        ),
    ]);
    config
}

/// An access token from Keycloak's token endpoint.
async fn token(form: &[(&str, &str)]) -> String {
    let body: Vec<String> = form.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let response = reqwest::Client::new()
        .post(format!("{}/protocol/openid-connect/token", issuer()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.join("&"))
        .send()
        .await
        .expect("Keycloak answers (cargo xtask servers up)");
    let status = response.status();
    let answer: Value = response.json().await.expect("token JSON");
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

/// A customer's token (password grant through the public `orderpipe-web` client).
async fn person(name: &str) -> String {
    token(&[
        ("grant_type", "password"),
        ("client_id", "orderpipe-web"),
        ("username", name),
        ("password", name),
    ])
    .await
}

/// A service's token (client-credentials grant).
async fn service(client: &str) -> String {
    let secret = format!("{client}-secret");
    token(&[
        ("grant_type", "client_credentials"),
        ("client_id", client),
        ("client_secret", &secret),
    ])
    .await
}

/// The claims of a token, unverified (to learn a subject or a `kid` in the test).
fn claims(token: &str) -> Value {
    jsonwebtoken::dangerous::insecure_decode::<Value>(token)
        .expect("a JWT")
        .claims
}

/// One request with an optional credential: (status, `WWW-Authenticate`, JSON answer).
async fn call(
    host: &TestHost,
    method: Method,
    path: &str,
    credential: Credential<'_>,
    body: Option<Value>,
) -> (StatusCode, Option<String>, Value) {
    let mut request = host.http.request(method, host.url(path));
    match credential {
        Credential::None => {}
        Credential::Bearer(token) => request = request.bearer_auth(token),
        Credential::ApiKey(key) => request = request.header("x-api-key", key),
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    (
        status,
        challenge,
        response.json().await.unwrap_or(Value::Null),
    )
}

#[derive(Clone, Copy)]
enum Credential<'a> {
    None,
    Bearer(&'a str),
    ApiKey(&'a str),
}

fn items() -> Value {
    json!({"items": [{"sku": "A-1", "qty": 2, "unit_price": 5.0}], "currency": "EUR"})
}

async fn create(host: &TestHost, credential: Credential<'_>, body: Value) -> Uuid {
    let (status, _, answer) = call(host, Method::POST, "/api/orders", credential, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    answer["order_id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("order id")
}

/// Waits until the order (read with `credential`) has status `status`.
async fn wait_for_status(
    host: &TestHost,
    credential: Credential<'_>,
    order_id: Uuid,
    status: &str,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, _, view) = call(
            host,
            Method::GET,
            &format!("/api/orders/{order_id}"),
            credential,
            None,
        )
        .await;
        assert_eq!(code, StatusCode::OK, "{view}");
        if view["status"] == status {
            return view;
        }
        assert!(
            Instant::now() < deadline,
            "order {order_id} stuck at {view} (waiting for {status})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A token like Keycloak's, signed with a key Keycloak never published.
fn forged(claims: &Value, kid: Option<String>) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = kid;
    let key = EncodingKey::from_rsa_pem(FOREIGN_PRIVATE_KEY.as_bytes()).expect("fixture key");
    jsonwebtoken::encode(&header, claims, &key).expect("signs")
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

#[tokio::test]
async fn a_request_without_a_credential_is_401_with_a_bearer_challenge() {
    bounded("no token", async {
        let host = TestHost::start(jwt_config()).await;
        for (method, path) in [
            (Method::POST, "/api/orders".to_owned()),
            (Method::GET, format!("/api/orders/{}", Uuid::new_v4())),
            (
                Method::GET,
                format!("/api/orders/{}/history", Uuid::new_v4()),
            ),
        ] {
            let (status, challenge, answer) =
                call(&host, method.clone(), &path, Credential::None, None).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path}: {answer}"
            );
            assert!(
                challenge
                    .as_deref()
                    .is_some_and(|c| c.starts_with("Bearer")),
                "{challenge:?}"
            );
            assert!(
                answer["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("authentication required")),
                "{answer}"
            );
        }
        // Health and the API document stay open; the document states the record routes'
        // security and their 401/403.
        let (status, _, _) = call(&host, Method::GET, "/healthz", Credential::None, None).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _, document) =
            call(&host, Method::GET, "/openapi.json", Credential::None, None).await;
        assert_eq!(status, StatusCode::OK);
        let scheme = &document["components"]["securitySchemes"]["bearer_jwt"];
        assert_eq!(scheme["scheme"], "bearer", "{document}");
        assert_eq!(scheme["bearerFormat"], "JWT", "{document}");
        for (path, method) in [
            ("/api/orders", "post"),
            ("/api/orders", "get"),
            ("/api/orders/{order_id}", "get"),
            ("/api/orders/{order_id}/events", "post"),
            ("/api/orders/{order_id}/history", "get"),
        ] {
            let operation = &document["paths"][path][method];
            assert_eq!(
                operation["security"],
                json!([{"bearer_jwt": []}]),
                "{method} {path}"
            );
            for status in ["401", "403"] {
                assert!(
                    operation["responses"].get(status).is_some(),
                    "{method} {path} does not document {status}"
                );
            }
        }
        assert!(
            document["paths"]["/healthz"]["get"]
                .get("security")
                .is_none()
        );
    })
    .await;
}

#[tokio::test]
async fn a_customer_owns_their_orders_and_others_get_404() {
    bounded("ownership", async {
        let host = TestHost::start(jwt_config()).await;
        let alice = person("alice").await;
        let bob = person("bob").await;
        let alice_sub = claims(&alice)["sub"].as_str().expect("sub").to_owned();

        // `customer` in the body is ignored: the order is alice's.
        let mut body = items();
        body["customer"] = json!("mallory");
        let order_id = create(&host, Credential::Bearer(&alice), body).await;
        let view = wait_for_status(
            &host,
            Credential::Bearer(&alice),
            order_id,
            "awaiting_payment",
        )
        .await;
        assert_eq!(view["customer"], json!(alice_sub), "{view}");

        // Bob learns nothing, not even that it exists.
        for (method, path, body) in [
            (Method::GET, format!("/api/orders/{order_id}"), None),
            (Method::GET, format!("/api/orders/{order_id}/history"), None),
            (
                Method::POST,
                format!("/api/orders/{order_id}/events"),
                Some(json!({"type": "cancel_requested"})),
            ),
        ] {
            let (status, _, answer) =
                call(&host, method, &path, Credential::Bearer(&bob), body).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {answer}");
        }
        let (status, _, _) = call(
            &host,
            Method::GET,
            &format!("/api/orders/{}", Uuid::new_v4()),
            Credential::Bearer(&bob),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // Alice reads her history and may cancel her own order.
        let (status, _, history) = call(
            &host,
            Method::GET,
            &format!("/api/orders/{order_id}/history"),
            Credential::Bearer(&alice),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{history}");
        let (status, _, answer) = call(
            &host,
            Method::POST,
            &format!("/api/orders/{order_id}/events"),
            Credential::Bearer(&alice),
            Some(json!({"type": "cancel_requested", "data": {"reason": "changed my mind"}})),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        wait_for_status(&host, Credential::Bearer(&alice), order_id, "cancelled").await;
    })
    .await;
}

#[tokio::test]
async fn only_the_payments_service_may_mark_an_order_paid() {
    bounded("payment", async {
        let host = TestHost::start(jwt_config()).await;
        let alice = person("alice").await;
        let payments = service("payments").await;
        let warehouse = service("warehouse").await;
        let order_id = create(&host, Credential::Bearer(&alice), items()).await;
        let events = format!("/api/orders/{order_id}/events");
        let pay = json!({"type": "payment_received", "data": {"amount": 10.0}});

        let (status, _, answer) = call(
            &host,
            Method::POST,
            &events,
            Credential::Bearer(&alice),
            Some(pay.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
        assert!(
            answer["error"]
                .as_str()
                .is_some_and(|e| e.contains("payment_received")),
            "{answer}"
        );
        let (status, _, answer) = call(
            &host,
            Method::POST,
            &events,
            Credential::Bearer(&warehouse),
            Some(pay.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
        // A service creates no orders.
        let (status, _, answer) = call(
            &host,
            Method::POST,
            "/api/orders",
            Credential::Bearer(&payments),
            Some(items()),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");

        let (status, _, answer) = call(
            &host,
            Method::POST,
            &events,
            Credential::Bearer(&payments),
            Some(pay),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        wait_for_status(&host, Credential::Bearer(&alice), order_id, "paid").await;

        let (status, _, answer) = call(
            &host,
            Method::POST,
            &events,
            Credential::Bearer(&warehouse),
            Some(json!({"type": "shipped"})),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        wait_for_status(&host, Credential::Bearer(&alice), order_id, "shipped").await;
    })
    .await;
}

#[tokio::test]
async fn forged_and_foreign_audience_tokens_are_401() {
    bounded("bad tokens", async {
        let host = TestHost::start(jwt_config()).await;
        let alice = person("alice").await;
        let real = claims(&alice);
        let header = jsonwebtoken::decode_header(&alice).expect("header");

        // Alice's own claims, signed by another key under Keycloak's kid, or an unknown kid.
        let under_keycloaks_kid = forged(&real, header.kid.clone());
        let unknown_kid = forged(&real, Some("no-such-key".into()));
        // A real Keycloak token whose audience is not orderpipe.
        let elsewhere = service("elsewhere").await;
        for (what, token) in [
            ("signed by another key", under_keycloaks_kid.as_str()),
            ("an unknown kid", unknown_kid.as_str()),
            ("another audience", elsewhere.as_str()),
            ("not a JWT", "not-a-jwt"),
        ] {
            let (status, challenge, answer) = call(
                &host,
                Method::POST,
                "/api/orders",
                Credential::Bearer(token),
                Some(items()),
            )
            .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {answer}");
            assert!(challenge.is_some(), "{what}: no WWW-Authenticate");
        }
        // The real token is accepted by the same host.
        create(&host, Credential::Bearer(&alice), items()).await;
    })
    .await;
}

#[tokio::test]
async fn expired_and_wrong_audience_tokens_are_401_with_a_static_key() {
    bounded("static key", async {
        let mut config = jwt_config();
        config.auth.jwt.issuer = "https://issuer.test/".into();
        config.auth.jwt.public_key_pem = Some(FOREIGN_PUBLIC_KEY.to_owned());
        config.auth.jwt.leeway_seconds = 5;
        let host = TestHost::start(config).await;
        let claims = |exp: u64, aud: &str| {
            json!({"iss": "https://issuer.test/", "aud": aud, "sub": "carol", "exp": exp,
                   "realm_access": {"roles": ["customer"]}})
        };
        let valid = forged(&claims(now() + 300, "orderpipe"), None);
        let expired = forged(&claims(now() - 60, "orderpipe"), None);
        let other_audience = forged(&claims(now() + 300, "billing"), None);
        for (what, token) in [("expired", &expired), ("another audience", &other_audience)] {
            let (status, _, answer) = call(
                &host,
                Method::POST,
                "/api/orders",
                Credential::Bearer(token),
                Some(items()),
            )
            .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {answer}");
        }
        let order_id = create(&host, Credential::Bearer(&valid), items()).await;
        let (status, _, view) = call(
            &host,
            Method::GET,
            &format!("/api/orders/{order_id}"),
            Credential::Bearer(&valid),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{view}");
        assert_eq!(view["customer"], "carol");
    })
    .await;
}

#[tokio::test]
async fn a_service_api_key_posts_only_its_events() {
    bounded("api keys", async {
        let mut config = jwt_config();
        config.auth.mode = None;
        config.auth.modes = vec![AuthMode::Jwt, AuthMode::ApiKeys];
        config.auth.api_keys = vec![ApiKeyConfig {
            name: "warehouse-1".into(),
            digest: orderpipe::auth::digest_of(WAREHOUSE_KEY),
            service: "warehouse".into(),
        }];
        let host = TestHost::start(config).await;
        let alice = person("alice").await;
        let payments = service("payments").await;
        let order_id = create(&host, Credential::Bearer(&alice), items()).await;
        let events = format!("/api/orders/{order_id}/events");

        let (status, _, answer) = call(
            &host,
            Method::POST,
            &events,
            Credential::ApiKey("not-the-key"),
            Some(json!({"type": "shipped"})),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
        let (status, _, answer) = call(
            &host,
            Method::POST,
            &events,
            Credential::ApiKey(WAREHOUSE_KEY),
            Some(json!({"type": "payment_received", "data": {"amount": 10.0}})),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");

        let (status, _, answer) = call(
            &host,
            Method::POST,
            &events,
            Credential::Bearer(&payments),
            Some(json!({"type": "payment_received", "data": {"amount": 10.0}})),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        wait_for_status(&host, Credential::ApiKey(WAREHOUSE_KEY), order_id, "paid").await;
        let (status, _, answer) = call(
            &host,
            Method::POST,
            &events,
            Credential::ApiKey(WAREHOUSE_KEY),
            Some(json!({"type": "shipped"})),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        wait_for_status(&host, Credential::Bearer(&alice), order_id, "shipped").await;
    })
    .await;
}

#[tokio::test]
async fn a_customer_lists_only_their_own_orders_newest_first() {
    bounded("list", async {
        let host = TestHost::start(jwt_config()).await;
        let alice = person("alice").await;
        let bob = person("bob").await;
        let mut alices = Vec::new();
        for _ in 0..3 {
            alices.push(create(&host, Credential::Bearer(&alice), items()).await);
            // Distinct creation times, so "newest first" has one answer.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let bobs = create(&host, Credential::Bearer(&bob), items()).await;

        // Alice's pages of two: her orders newest first, no one else's. Other tests (and
        // earlier runs) sign in as alice too, so other orders of hers may sit between.
        let ids = |page: &Value| -> Vec<Uuid> {
            page["records"]
                .as_array()
                .expect("records")
                .iter()
                .map(|record| record["order_id"].as_str().unwrap().parse().unwrap())
                .collect()
        };
        let alice_sub = claims(&alice)["sub"].as_str().expect("sub").to_owned();
        let mut listed = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..50 {
            let path = match &cursor {
                Some(cursor) => format!("/api/orders?limit=2&cursor={cursor}"),
                None => "/api/orders?limit=2".to_owned(),
            };
            let (status, _, page) =
                call(&host, Method::GET, &path, Credential::Bearer(&alice), None).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            assert!(ids(&page).len() <= 2, "{page}");
            for record in page["records"].as_array().expect("records") {
                assert_eq!(record["customer"], json!(alice_sub), "{record}");
            }
            listed.extend(ids(&page));
            cursor = page["next_cursor"].as_str().map(str::to_owned);
            if cursor.is_none() || alices.iter().all(|id| listed.contains(id)) {
                break;
            }
        }
        let mine: Vec<Uuid> = listed
            .iter()
            .copied()
            .filter(|id| alices.contains(id))
            .collect();
        assert_eq!(mine, vec![alices[2], alices[1], alices[0]], "{listed:?}");
        assert!(!listed.contains(&bobs));

        // Bob's list holds his order and none of alice's.
        let (status, _, page) = call(
            &host,
            Method::GET,
            "/api/orders?limit=100",
            Credential::Bearer(&bob),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(ids(&page).contains(&bobs), "{page}");
        assert!(ids(&page).iter().all(|id| !alices.contains(id)), "{page}");

        // Bounded: a limit over 100 is refused.
        let (status, _, _) = call(
            &host,
            Method::GET,
            "/api/orders?limit=101",
            Credential::Bearer(&alice),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    })
    .await;
}

#[tokio::test]
async fn the_rules_hold_on_every_pipeline_invoices_too() {
    bounded("invoices", async {
        let mut config = jwt_config();
        config.pipelines = vec![
            PipelineConfig {
                name: "orders".into(),
                topic: config.kafka.topic.clone(),
                plugin: "order".into(),
                entity: None,
            },
            PipelineConfig {
                name: "invoices".into(),
                topic: format!("{}-invoices", config.kafka.topic),
                plugin: "invoice".into(),
                entity: None,
            },
        ];
        let host = TestHost::start(config).await;
        let alice = person("alice").await;
        let bob = person("bob").await;
        let payments = service("payments").await;
        let (status, _, answer) = call(
            &host,
            Method::POST,
            "/api/invoices",
            Credential::Bearer(&alice),
            Some(json!({"customer": "acme", "currency": "EUR",
                        "items": [{"sku": "consulting", "qty": 1, "unit_price": 100}]})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        let invoice_id = answer["invoice_id"]
            .as_str()
            .expect("invoice id")
            .to_owned();
        let path = format!("/api/invoices/{invoice_id}");

        let (status, _, view) =
            call(&host, Method::GET, &path, Credential::Bearer(&alice), None).await;
        assert_eq!(status, StatusCode::OK, "{view}");
        assert_eq!(view["customer"], claims(&alice)["sub"], "{view}");
        let (status, _, _) = call(&host, Method::GET, &path, Credential::Bearer(&bob), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _, _) = call(&host, Method::GET, &path, Credential::None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        // payments may post on orders only: invoices are not its pipeline.
        let (status, _, answer) = call(
            &host,
            Method::POST,
            &format!("{path}/events"),
            Credential::Bearer(&payments),
            Some(json!({"type": "payment_received", "data": {"amount": 100}})),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
        // Customers have no invoice events by default.
        let (status, _, answer) = call(
            &host,
            Method::POST,
            &format!("{path}/events"),
            Credential::Bearer(&alice),
            Some(json!({"type": "issue"})),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
        let (status, _, page) = call(
            &host,
            Method::GET,
            "/api/invoices",
            Credential::Bearer(&alice),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(
            page["records"]
                .as_array()
                .expect("records")
                .iter()
                .any(|record| record["invoice_id"] == json!(invoice_id)),
            "{page}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_token_with_the_admin_role_manages_the_plugin_registry() {
    bounded("admin role", async {
        let mut config = jwt_config();
        config.auth.jwt.issuer = "https://issuer.test/".into();
        config.auth.jwt.public_key_pem = Some(FOREIGN_PUBLIC_KEY.to_owned());
        config.admin.token = Some("auth-test-admin-token".into());
        let host = TestHost::start(config).await;
        let token = |roles: &[&str]| {
            forged(
                &json!({"iss": "https://issuer.test/", "aud": "orderpipe", "sub": "dana",
                        "exp": now() + 300, "realm_access": {"roles": roles}}),
                None,
            )
        };
        let admin = token(&["admin"]);
        let customer = token(&["customer"]);
        for (what, credential, expected) in [
            ("admin role", Credential::Bearer(&admin), StatusCode::OK),
            (
                "admin token",
                Credential::Bearer("auth-test-admin-token"),
                StatusCode::OK,
            ),
            (
                "customer",
                Credential::Bearer(&customer),
                StatusCode::FORBIDDEN,
            ),
            ("nothing", Credential::None, StatusCode::UNAUTHORIZED),
        ] {
            let (status, _, answer) =
                call(&host, Method::GET, "/api/plugins", credential, None).await;
            assert_eq!(status, expected, "{what}: {answer}");
        }
        // The admin token is an admin on the record routes too.
        create(&host, Credential::Bearer("auth-test-admin-token"), items()).await;
    })
    .await;
}
