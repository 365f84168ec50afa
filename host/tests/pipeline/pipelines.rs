//! Several pipelines in one host: orders and invoices, each on its own topic, decided by its
//! own plugin, served under its own route, and never showing each other's records. Run on
//! the real servers and on the embedded backends.

use std::time::{Duration, Instant};

use orderpipe::config::{BackendsConfig, Config, PipelineConfig};
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{
    TestHost, activate_version, config, plugins_dir, upload_version, wait_for_active,
};

/// `config` serving orders (on its unique topic, decided by `order`) and invoices (on a
/// topic unique to this test, decided by `invoice`).
fn with_invoices(mut config: Config) -> Config {
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
    config
}

/// POSTs a record to `/api/<route>`; returns its id, checking the answer names the entity.
async fn create(host: &TestHost, route: &str, entity: &str, body: &Value) -> Uuid {
    let (status, answer) = host
        .post_raw(&format!("/api/{route}"), body.to_string())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let capitalized = format!("{}{}", entity[..1].to_uppercase(), &entity[1..]);
    assert_eq!(
        answer["message"],
        format!("{capitalized} created successfully")
    );
    assert_eq!(answer.as_object().map(|o| o.len()), Some(2), "{answer}");
    answer[format!("{entity}_id")]
        .as_str()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no {entity}_id in {answer}"))
}

async fn post_event(host: &TestHost, route: &str, id: Uuid, kind: &str, data: Value) {
    let body = json!({ "type": kind, "data": data }).to_string();
    let (status, answer) = host
        .post_raw(&format!("/api/{route}/{id}/events"), body)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
}

/// Waits until the record has `version` recorded events; returns its view.
async fn wait_for_version(host: &TestHost, route: &str, id: Uuid, version: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, view) = host.get(&format!("/api/{route}/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{view}");
        if view["version"].as_u64() >= Some(version) {
            return view;
        }
        assert!(
            Instant::now() < deadline,
            "{route}/{id} stuck at {view} (waiting for version {version})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn history(host: &TestHost, route: &str, id: Uuid) -> Vec<Value> {
    let (status, answer) = host.get(&format!("/api/{route}/{id}/history")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["history"].as_array().cloned().unwrap_or_default()
}

/// An order is priced and paid by the `order` plugin.
async fn order_flow(host: &TestHost) -> Uuid {
    let order_id = create(
        host,
        "orders",
        "order",
        &json!({"customer": "ada", "items": [{"sku": "A-1", "qty": 2, "unit_price": 5}]}),
    )
    .await;
    let view = wait_for_version(host, "orders", order_id, 1).await;
    assert_eq!(view["status"], "awaiting_payment", "{view}");
    assert_eq!(view["order_id"], order_id.to_string());
    post_event(
        host,
        "orders",
        order_id,
        "payment_received",
        json!({"amount": 10}),
    )
    .await;
    let view = wait_for_version(host, "orders", order_id, 2).await;
    assert_eq!(view["status"], "paid", "{view}");
    order_id
}

/// An invoice is drafted, issued and paid in two parts by the `invoice` plugin.
async fn invoice_flow(host: &TestHost) -> Uuid {
    let invoice_id = create(
        host,
        "invoices",
        "invoice",
        &json!({"customer": "acme", "currency": "EUR",
                "items": [{"sku": "consulting", "qty": 3, "unit_price": 100}]}),
    )
    .await;
    let view = wait_for_version(host, "invoices", invoice_id, 1).await;
    assert_eq!(view["status"], "created", "{view}");
    assert_eq!(view["invoice_id"], invoice_id.to_string());
    assert!(view.get("order_id").is_none(), "{view}");
    post_event(
        host,
        "invoices",
        invoice_id,
        "issue",
        json!({"due_date": "2026-12-31"}),
    )
    .await;
    let view = wait_for_version(host, "invoices", invoice_id, 2).await;
    assert_eq!(view["status"], "issued", "{view}");
    assert_eq!(view["attributes"]["total"], json!(300.0), "{view}");
    post_event(
        host,
        "invoices",
        invoice_id,
        "payment_received",
        json!({"amount": 120}),
    )
    .await;
    let view = wait_for_version(host, "invoices", invoice_id, 3).await;
    assert_eq!(
        view["status"], "issued",
        "a partial payment pays nothing: {view}"
    );
    post_event(
        host,
        "invoices",
        invoice_id,
        "payment_received",
        json!({"amount": 180}),
    )
    .await;
    let view = wait_for_version(host, "invoices", invoice_id, 4).await;
    assert_eq!(view["status"], "paid", "{view}");
    assert_eq!(view["attributes"]["amount_paid"], json!(300.0), "{view}");
    invoice_id
}

/// Both flows concurrently, then everything that keeps the pipelines apart; returns the
/// order's and the invoice's ids.
async fn orders_and_invoices_flow_side_by_side(host: &TestHost) -> (Uuid, Uuid) {
    let (order_id, invoice_id) = tokio::join!(order_flow(host), invoice_flow(host));

    // Each record was decided by its own pipeline's plugin.
    let order_history = history(host, "orders", order_id).await;
    assert_eq!(order_history.len(), 2);
    for entry in &order_history {
        assert_eq!(
            (&entry["plugin"], &entry["plugin_version"]),
            (&json!("order"), &json!("0.1.0"))
        );
    }
    let invoice_history = history(host, "invoices", invoice_id).await;
    let outcomes: Vec<&str> = invoice_history
        .iter()
        .map(|entry| entry["outcome"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        outcomes,
        ["unchanged", "transitioned", "unchanged", "transitioned"]
    );
    for entry in &invoice_history {
        assert_eq!(
            (&entry["plugin"], &entry["plugin_version"]),
            (&json!("invoice"), &json!("0.1.0"))
        );
    }
    assert!(
        invoice_history[2]["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("180.00 outstanding")),
        "{invoice_history:?}"
    );

    // A record is invisible on the other pipeline's routes, cached or not.
    for (path, entity) in [
        (format!("/api/invoices/{order_id}"), "invoice"),
        (format!("/api/invoices/{order_id}/history"), "invoice"),
        (format!("/api/orders/{invoice_id}"), "order"),
        (format!("/api/orders/{invoice_id}/history"), "order"),
    ] {
        let (status, answer) = host.get(&path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {answer}");
        assert!(
            answer["error"]
                .as_str()
                .is_some_and(|error| error.starts_with(entity) && error.contains("not found")),
            "{path}: {answer}"
        );
    }
    let body = json!({"type": "shipped"}).to_string();
    let (status, answer) = host
        .post_raw(&format!("/api/orders/{invoice_id}/events"), body)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");

    // Bad input on the invoice route: a clear 4xx JSON naming the problem.
    let (status, answer) = host
        .post_raw("/api/invoices", r#"{"items": "three hours"}"#)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("`items`")),
        "{answer}"
    );
    let (status, answer) = host.get("/api/invoices/not-a-uuid").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("invoice id \"not-a-uuid\" is not a UUID")),
        "{answer}"
    );
    let (status, answer) = host
        .post_raw(
            &format!("/api/invoices/{invoice_id}/events"),
            "{\"type\": 7}",
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");

    // Metrics name the pipeline.
    assert_eq!(
        host.metric(
            "orderpipe_events_processed_total{outcome=\"transitioned\",pipeline=\"invoices\"}"
        )
        .await,
        2.0
    );
    assert_eq!(
        host.metric(
            "orderpipe_events_processed_total{outcome=\"transitioned\",pipeline=\"orders\"}"
        )
        .await,
        2.0
    );
    (order_id, invoice_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_and_invoices_are_separate_pipelines_on_the_servers() {
    let mut host = TestHost::start(with_invoices(config("order"))).await;
    let (order_id, _) = orders_and_invoices_flow_side_by_side(&host).await;

    // An event for an order that arrives on the invoices topic (a misrouted producer) is
    // dead-lettered by the invoices worker; the order is not touched.
    let misrouted = json!({"event": {"id": Uuid::new_v4(), "order_id": order_id,
                                     "kind": "void_requested", "data": {}, "at_ms": 0}});
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &host.config.kafka.brokers)
        .create()
        .expect("producer");
    producer
        .send(
            FutureRecord::to(&host.config.pipelines[1].topic)
                .key(&order_id.to_string())
                .payload(&misrouted.to_string()),
            Duration::from_secs(5),
        )
        .await
        .expect("misrouted event produced");
    let sample = "orderpipe_dead_letters_total{cause=\"wrong_pipeline\",pipeline=\"invoices\"}";
    let deadline = Instant::now() + Duration::from_secs(30);
    while host.metric(sample).await < 1.0 {
        assert!(
            Instant::now() < deadline,
            "the misrouted event was not dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, view) = host.get(&format!("/api/orders/{order_id}")).await;
    assert_eq!(
        (view["status"].as_str(), view["version"].as_u64()),
        (Some("paid"), Some(2))
    );
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_and_invoices_are_separate_pipelines_on_embedded_backends() {
    let data = tempfile::tempdir().expect("temporary directory");
    let mut embedded = config("order");
    embedded.backends = BackendsConfig {
        data_dir: data.path().to_path_buf(),
        ..BackendsConfig::default()
    };
    embedded.plugins.dir = plugins_dir();
    let mut host = TestHost::start(with_invoices(embedded)).await;
    orders_and_invoices_flow_side_by_side(&host).await;
    // Each topic is its own log file.
    let topic = host.config.kafka.topic.clone();
    assert!(data.path().join(format!("events-{topic}.redb")).exists());
    assert!(
        data.path()
            .join(format!("events-{topic}-invoices.redb"))
            .exists()
    );
    host.stop().await;
}

#[tokio::test]
async fn a_host_with_two_pipelines_on_one_topic_does_not_start() {
    let mut config = with_invoices(config("order"));
    config.pipelines[1].topic = config.pipelines[0].topic.clone();
    let error = orderpipe::server::Host::start(config)
        .await
        .err()
        .expect("the host refuses the configuration")
        .to_string();
    assert!(error.contains("both use topic"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_swapping_the_order_plugin_leaves_the_invoice_pipeline_alone() {
    const TOKEN: &str = "pipelines-admin-token";
    let mut config = with_invoices(config("order"));
    config.admin.token = Some(TOKEN.into());
    let mut host = TestHost::start(config).await;
    let v2 = std::fs::read(plugins_dir().join("order_v2.wasm"))
        .expect("order_v2.wasm (run `cargo xtask plugins`)");
    let upload = upload_version(&host.http, &host.base, "order", TOKEN, v2)
        .send()
        .await
        .expect("upload");
    assert_eq!(upload.status(), StatusCode::CREATED);
    let activate = activate_version(&host.http, &host.base, "order", TOKEN, "0.2.0")
        .send()
        .await
        .expect("activate");
    assert_eq!(activate.status(), StatusCode::OK);
    wait_for_active(
        &host.base,
        "order",
        "0.2.0",
        Instant::now(),
        Duration::from_secs(10),
    )
    .await;

    let order_id = create(&host, "orders", "order", &json!({})).await;
    let invoice_id = create(
        &host,
        "invoices",
        "invoice",
        &json!({"items": [{"sku": "licence", "qty": 1, "unit_price": 99}]}),
    )
    .await;
    wait_for_version(&host, "orders", order_id, 1).await;
    wait_for_version(&host, "invoices", invoice_id, 1).await;
    let order_entry = &history(&host, "orders", order_id).await[0];
    assert_eq!(order_entry["plugin_version"], "0.2.0", "{order_entry}");
    assert!(
        order_entry["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("v2: ")),
        "{order_entry}"
    );
    let invoice_entry = &history(&host, "invoices", invoice_id).await[0];
    assert_eq!(
        (&invoice_entry["plugin"], &invoice_entry["plugin_version"]),
        (&json!("invoice"), &json!("0.1.0")),
        "{invoice_entry}"
    );
    assert_eq!(
        host.metric("orderpipe_plugin_active{plugin=\"invoice\",version=\"0.1.0\"}")
            .await,
        1.0
    );
    host.stop().await;
}
