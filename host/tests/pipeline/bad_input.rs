//! Every kind of bad request gets a 4xx JSON error naming the problem.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestHost, config};

fn error_text(answer: &Value) -> String {
    answer["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no JSON error in {answer}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_json_errors() {
    let mut host = TestHost::start(config("order")).await;

    // Malformed JSON.
    let (status, answer) = host.post_raw("/api/orders", "{\"items\": [").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_text(&answer).contains("malformed JSON"), "{answer}");

    // Wrong types name the field.
    let (status, answer) = host
        .post_raw("/api/orders", json!({"items": "lots"}).to_string())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_text(&answer).contains("`items`"), "{answer}");
    let body = json!({"items": [{"sku": "A", "qty": "two", "unit_price": 1.0}]});
    let (status, answer) = host.post_raw("/api/orders", body.to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_text(&answer).contains("items[0].qty"), "{answer}");
    let (status, answer) = host.post_raw("/api/orders", "[1, 2]").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_text(&answer).contains("invalid"), "{answer}");

    // Unknown fields are refused rather than silently dropped.
    let (status, answer) = host
        .post_raw("/api/orders", json!({"custommer": "typo"}).to_string())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_text(&answer).contains("custommer"), "{answer}");

    // Oversized body.
    let huge = json!({"customer": "x".repeat(200 * 1024)}).to_string();
    let (status, answer) = host.post_raw("/api/orders", huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        error_text(&answer).contains("larger than the limit"),
        "{answer}"
    );

    // Ids that are not UUIDs.
    for path in ["/api/orders/42", "/api/orders/not-a-uuid/history"] {
        let (status, answer) = host.get(path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert!(error_text(&answer).contains("is not a UUID"), "{answer}");
    }
    let (status, answer) = host
        .post_raw(
            "/api/orders/xyz/events",
            json!({"type": "shipped"}).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_text(&answer).contains("is not a UUID"), "{answer}");

    // Unknown orders.
    let unknown = uuid::Uuid::new_v4();
    for path in [
        format!("/api/orders/{unknown}"),
        format!("/api/orders/{unknown}/history"),
    ] {
        let (status, answer) = host.get(&path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(error_text(&answer).contains("not found"), "{answer}");
    }
    let (status, answer) = host
        .post_raw(
            &format!("/api/orders/{unknown}/events"),
            json!({"type": "shipped"}).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(error_text(&answer).contains("not found"), "{answer}");

    // Bad events on a real order.
    let order_id = host.create_order(None).await;
    let events = format!("/api/orders/{order_id}/events");
    for (body, expected) in [
        ("".to_owned(), "needs a JSON body"),
        (json!({"data": {}}).to_string(), "missing field `type`"),
        (json!({"type": ""}).to_string(), "`type`"),
        (json!({"type": "created"}).to_string(), "reserved"),
        (json!({"type": "x", "data": [1]}).to_string(), "`data`"),
    ] {
        let (status, answer) = host.post_raw(&events, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert!(error_text(&answer).contains(expected), "{body}: {answer}");
    }

    // Unknown routes and wrong methods.
    let (status, answer) = host.get("/api/nothing-here").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(error_text(&answer).contains("no route"), "{answer}");
    let response = host
        .http
        .delete(host.url("/api/orders"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let answer: Value = response.json().await.unwrap();
    assert!(error_text(&answer).contains("not allowed"), "{answer}");
    let response = host
        .http
        .put(host.url(&format!("/api/orders/{order_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);

    // Health, readiness and metrics answer.
    let (status, _) = host.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer) = host.get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["checks"]["kafka"], "ok");
    let metrics = host
        .http
        .get(host.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("orderpipe_http_requests_total"),
        "{metrics}"
    );
    assert!(metrics.contains("route=\"/api/orders\""), "{metrics}");

    host.stop().await;
}
