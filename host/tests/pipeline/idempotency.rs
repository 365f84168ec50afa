//! `POST /api/orders` with an `Idempotency-Key`: a retry with the same key, sequential,
//! concurrent, or after an attempt that never reached Kafka, gets the same order id and
//! never creates a second order; `POST …/events` with a key: every retry is the same event,
//! applied once.

use std::collections::HashSet;
use std::time::Duration;

use futures::future::join_all;
use orderpipe::backend::cassandra::CassandraStore;
use orderpipe::backend::{IdempotencyClaim, OrderStore};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{Backends, KEYSPACE, TestHost, config};

const ACCEPTED: &str = "orderpipe_orders_accepted_total";
const REDELIVERED: &str = "orderpipe_events_redelivered_total";

/// A key no other test (or earlier run) uses: keys are global to the keyspace.
fn fresh_key() -> String {
    format!("test-{}", Uuid::new_v4())
}

/// What one POST answered.
struct Answer {
    status: StatusCode,
    body: Value,
    replayed: bool,
}

impl Answer {
    fn order_id(&self) -> Uuid {
        assert_eq!(self.status, StatusCode::CREATED, "{}", self.body);
        assert_eq!(self.body["message"], "Order created successfully");
        self.body["order_id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("no order id in {}", self.body))
    }
}

async fn post(host: &TestHost, keys: &[&[u8]], body: &str) -> Answer {
    let mut request = host
        .http
        .post(host.url("/api/orders"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    for key in keys {
        request = request.header(
            "Idempotency-Key",
            reqwest::header::HeaderValue::from_bytes(key).expect("header value"),
        );
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let replayed = match response.headers().get("idempotent-replayed") {
        None => false,
        Some(value) => {
            assert_eq!(value, "true");
            true
        }
    };
    Answer {
        status,
        body: response.json().await.unwrap_or(Value::Null),
        replayed,
    }
}

fn order_body(customer: &str) -> Value {
    json!({
        "customer": customer,
        "items": [{"sku": "A-1", "qty": 2, "unit_price": 9.99}, {"sku": "B-2", "qty": 1, "unit_price": 5.0}],
        "currency": "EUR",
    })
}

fn created_entries(history: &[Value]) -> usize {
    history
        .iter()
        .filter(|entry| entry["event_type"] == "created")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_with_the_same_key_gets_the_same_order() {
    let mut host = TestHost::start(config("order")).await;
    let key = fresh_key();
    let body = order_body("ada").to_string();

    let first = post(&host, &[key.as_bytes()], &body).await;
    let order_id = first.order_id();
    assert!(
        !first.replayed,
        "the first request is not a replay: {}",
        first.body
    );
    let view = host
        .wait_for_version(order_id, 1, Duration::from_secs(60))
        .await;
    assert_eq!(view["status"], "awaiting_payment", "{view}");

    // The same request again, spaced and ordered differently: the same order, nothing published.
    let respaced = r#"{ "currency": "EUR", "items": [ {"unit_price": 9.99, "sku": "A-1", "qty": 2},
        {"qty": 1, "sku": "B-2", "unit_price": 5} ], "customer": "ada" }"#;
    for retry_body in [body.as_str(), respaced] {
        let retry = post(&host, &[key.as_bytes()], retry_body).await;
        assert_eq!(retry.order_id(), order_id);
        assert!(
            retry.replayed,
            "a retry is marked Idempotent-Replayed: {}",
            retry.body
        );
    }

    // A payment orders after anything the retries could have published on the partition.
    host.post_event(
        order_id,
        "payment_received",
        json!({"amount": 24.98, "payment_id": format!("p-{order_id}")}),
    )
    .await;
    let view = host
        .wait_for_version(order_id, 2, Duration::from_secs(60))
        .await;
    assert_eq!(view["status"], "paid", "{view}");
    let history = host.history(order_id).await;
    assert_eq!(created_entries(&history), 1, "{history:?}");
    assert_eq!(history.len(), 2, "{history:?}");
    assert_eq!(
        host.metric(ACCEPTED).await,
        1.0,
        "one order accepted, retries not counted"
    );
    assert_eq!(
        host.metric(REDELIVERED).await,
        0.0,
        "a replay of a stored order publishes nothing"
    );

    // Without the header, the same body is a new order every time (unchanged behaviour).
    let other = post(&host, &[], &body).await;
    assert_ne!(other.order_id(), order_id);
    assert!(!other.replayed);
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_retries_with_one_key_create_one_order() {
    let mut host = TestHost::start(config("order")).await;
    let key = fresh_key();
    let body = order_body("grace").to_string();

    let keys: &[&[u8]] = &[key.as_bytes()];
    let answers = join_all((0..10).map(|_| post(&host, keys, &body))).await;
    let ids: HashSet<Uuid> = answers.iter().map(Answer::order_id).collect();
    assert_eq!(ids.len(), 1, "one key, one order id: {ids:?}");
    let order_id = *ids.iter().next().unwrap();
    assert_eq!(
        answers.iter().filter(|answer| !answer.replayed).count(),
        1,
        "exactly one request claimed the key"
    );

    host.post_event(
        order_id,
        "payment_received",
        json!({"amount": 24.98, "payment_id": format!("p-{order_id}")}),
    )
    .await;
    let view = host
        .wait_for_version(order_id, 2, Duration::from_secs(60))
        .await;
    assert_eq!(view["status"], "paid", "{view}");
    let history = host.history(order_id).await;
    assert_eq!(created_entries(&history), 1, "{history:?}");
    assert_eq!(history.len(), 2, "{history:?}");

    // A retry that found the order not stored yet published its `created` event again;
    // the worker recognised each such copy by its event id and applied none of them.
    let accepted = host.metric(ACCEPTED).await;
    let redelivered = host.metric(REDELIVERED).await;
    assert!((1.0..=10.0).contains(&accepted), "{accepted}");
    assert_eq!(
        redelivered,
        accepted - 1.0,
        "every extra publication was a no-op redelivery"
    );
    println!("10 concurrent retries: {accepted} publication(s), one order");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_reused_with_another_request_is_refused() {
    let mut host = TestHost::start(config("order")).await;
    let key = fresh_key();
    let body = order_body("alan").to_string();
    let order_id = post(&host, &[key.as_bytes()], &body).await.order_id();

    for other in [order_body("someone else").to_string(), String::new()] {
        let answer = post(&host, &[key.as_bytes()], &other).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            answer.body
        );
        let error = answer.body["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("Idempotency-Key") && error.contains("different request"),
            "{error}"
        );
        assert!(
            !error.contains(&order_id.to_string()),
            "the 422 does not reveal the order: {error}"
        );
    }
    // The original request still gets its order.
    assert_eq!(
        post(&host, &[key.as_bytes()], &body).await.order_id(),
        order_id
    );

    // An empty body and `{}` are the same (empty) order.
    let empty_key = fresh_key();
    let empty = post(&host, &[empty_key.as_bytes()], "").await.order_id();
    let braces = post(&host, &[empty_key.as_bytes()], "{}").await;
    assert_eq!(braces.order_id(), empty);
    assert!(braces.replayed);
    assert_eq!(host.metric(ACCEPTED).await, 2.0);
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_idempotency_keys_are_refused() {
    let mut host = TestHost::start(config("order")).await;
    let too_long = "k".repeat(256);
    let cases: [&[&[u8]]; 6] = [
        &[b""],
        &[b"two words"],
        &[b"tab\there"],
        &[b"caf\xe9"],
        &[too_long.as_bytes()],
        &[b"one", b"two"],
    ];
    for keys in cases {
        let answer = post(&host, keys, "").await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{keys:?}");
        let error = answer.body["error"].as_str().unwrap_or_default();
        assert!(error.contains("Idempotency-Key"), "{keys:?}: {error}");
    }
    assert_eq!(
        host.metric(ACCEPTED).await,
        0.0,
        "no refused request made an order"
    );

    // 255 visible characters are fine.
    let longest = format!("{}{}", Uuid::new_v4().simple(), "~".repeat(255 - 32));
    let answer = post(&host, &[longest.as_bytes()], "").await;
    answer.order_id();
    assert!(!answer.replayed);
    host.stop().await;
}

/// An attempt that claimed its key and then got a 503 (Kafka never acknowledged it) left
/// the key reserved for an order that does not exist. The retry must publish that order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_whose_first_attempt_failed_can_be_retried() {
    let config = config("order");
    let mut host = TestHost::start(config.clone()).await;
    let store = CassandraStore::connect(&config.cassandra)
        .await
        .expect("cassandra store");
    let backends = Backends::connect(&config).await;
    let body = order_body("barbara").to_string();

    // The hash the API computes for this body, taken from a claim the API made for it.
    let probe_key = fresh_key();
    post(&host, &[probe_key.as_bytes()], &body).await.order_id();
    let (hash,): (String,) = backends
        .cassandra
        .query_unpaged(
            format!("SELECT request_hash FROM {KEYSPACE}.idempotency_keys WHERE key = ?"),
            (probe_key.as_str(),),
        )
        .await
        .expect("query")
        .into_rows_result()
        .expect("rows")
        .single_row()
        .expect("the API stored the key");

    // The failed first attempt: the key is claimed, nothing is published.
    let key = fresh_key();
    let order_id = Uuid::new_v4();
    assert_eq!(
        store
            .claim_idempotency_key(&key, order_id, &hash)
            .await
            .unwrap(),
        IdempotencyClaim::Claimed
    );
    assert_eq!(
        store
            .claim_idempotency_key(&key, Uuid::new_v4(), "another hash")
            .await
            .unwrap(),
        IdempotencyClaim::Existing {
            order_id,
            request_hash: hash.clone()
        },
        "a claimed key keeps its order"
    );
    let (status, _) = host.get(&format!("/api/orders/{order_id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The retry creates that very order, and it is processed.
    let retry = post(&host, &[key.as_bytes()], &body).await;
    assert_eq!(retry.order_id(), order_id);
    assert!(retry.replayed);
    let view = host
        .wait_for_version(order_id, 1, Duration::from_secs(60))
        .await;
    assert_eq!(view["status"], "awaiting_payment", "{view}");
    let history = host.history(order_id).await;
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0]["event_type"], "created");
    assert_eq!(
        history[0]["event_id"],
        Uuid::new_v5(&order_id, b"orderpipe:created").to_string(),
        "an idempotent order's created event has an id derived from the order id"
    );

    // Once stored, a further retry answers from it and publishes nothing.
    let again = post(&host, &[key.as_bytes()], &body).await;
    assert_eq!(again.order_id(), order_id);
    assert!(again.replayed);
    assert_eq!(
        host.metric(ACCEPTED).await,
        2.0,
        "the probe and the retried order"
    );
    assert_eq!(host.metric(REDELIVERED).await, 0.0);
    host.stop().await;
}

/// `POST …/events` with an `Idempotency-Key`: the answer's `event_id` is the same for every
/// retry, and the worker applies the event once however often it was published.
async fn post_keyed_event(host: &TestHost, order_id: Uuid, key: &str, body: &Value) -> Uuid {
    let response = host
        .http
        .post(host.url(&format!("/api/orders/{order_id}/events")))
        .header("content-type", "application/json")
        .header("Idempotency-Key", key)
        .body(body.to_string())
        .send()
        .await
        .expect("request");
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    answer["event_id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no event id in {answer}"))
}

/// A client whose event POST got a 503 or timed out cannot know whether Kafka kept it; with
/// a key it retries, and every publication after the first is a redelivery, not an event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_retried_with_its_key_is_applied_once() {
    let mut host = TestHost::start(config("order")).await;
    let order_id = post(&host, &[], &order_body("edsger").to_string())
        .await
        .order_id();
    host.wait_for_version(order_id, 1, Duration::from_secs(60))
        .await;

    let key = fresh_key();
    let payment = json!({"type": "payment_received",
                         "data": {"amount": 24.98, "payment_id": format!("p-{order_id}")}});
    let first = post_keyed_event(&host, order_id, &key, &payment).await;
    let retries = join_all((0..2).map(|_| post_keyed_event(&host, order_id, &key, &payment))).await;
    assert_eq!(retries, [first, first], "every retry names the same event");

    let view = host
        .wait_for_version(order_id, 2, Duration::from_secs(60))
        .await;
    assert_eq!(view["status"], "paid", "{view}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while host.metric(REDELIVERED).await < 2.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the two retries reach the worker as redeliveries within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let history = host.history(order_id).await;
    assert_eq!(
        history.len(),
        2,
        "the payment is recorded once: {history:?}"
    );
    assert_eq!(history[1]["event_id"], first.to_string(), "{history:?}");
    assert_eq!(host.order(order_id).await["version"], 2);

    // The key is the record's: on another order it is another event; without a key, the
    // same body is a new event every time (unchanged behaviour).
    let other_order = post(&host, &[], &order_body("edsger").to_string())
        .await
        .order_id();
    assert_ne!(
        post_keyed_event(&host, other_order, &key, &payment).await,
        first
    );
    assert_ne!(host.post_event(order_id, "shipped", json!({})).await, first);
    host.stop().await;
}
