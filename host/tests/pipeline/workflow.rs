//! 200 orders posted concurrently, driven through the default plugin's workflow; every one
//! must end in its expected status in Cassandra, in Redis and through GET, with exactly the
//! expected history: nothing lost, nothing applied twice.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{Backends, TestHost, config};

#[derive(Clone, Copy, Debug)]
enum Scenario {
    /// The original's empty POST.
    Empty,
    /// An order the plugin refuses (bad qty, negative price, unknown currency).
    Invalid(u8),
    /// Paid in full, then shipped.
    PayShip,
    /// Underpaid (event rejected), paid in full, then cancelled.
    UnderpayPayCancel,
    /// Cancelled while awaiting payment.
    CancelEarly,
    /// Paid, shipped, then a cancel request that must be rejected.
    ShipThenCancel,
}

/// (event type, outcome, from, to) for each recorded event.
type Step = (&'static str, &'static str, &'static str, &'static str);

impl Scenario {
    fn body(self, n: usize) -> Option<Value> {
        let items = json!([
            {"sku": "A-1", "qty": 2, "unit_price": 9.99},
            {"sku": "B-2", "qty": 1, "unit_price": 5.0},
        ]);
        match self {
            Scenario::Empty => None,
            Scenario::Invalid(0) => Some(
                json!({"customer": format!("c{n}"), "items": [{"sku": "A", "qty": 0, "unit_price": 1.0}]}),
            ),
            Scenario::Invalid(1) => Some(
                json!({"customer": format!("c{n}"), "items": [{"sku": "A", "qty": 1, "unit_price": -3.0}]}),
            ),
            Scenario::Invalid(_) => {
                Some(json!({"customer": format!("c{n}"), "items": items, "currency": "XYZ"}))
            }
            _ => Some(
                json!({"customer": format!("c{n}"), "items": items, "currency": "EUR", "attributes": {"n": n}}),
            ),
        }
    }

    /// The events to post after creation.
    fn events(self, order_id: Uuid) -> Vec<(&'static str, Value)> {
        let pay = |amount: f64, tag: &str| {
            (
                "payment_received",
                json!({"amount": amount, "payment_id": format!("{tag}-{order_id}")}),
            )
        };
        match self {
            Scenario::Empty | Scenario::Invalid(_) => vec![],
            Scenario::PayShip => vec![pay(TOTAL, "pay"), ("shipped", json!({}))],
            Scenario::UnderpayPayCancel => vec![
                pay(10.0, "under"),
                pay(TOTAL, "pay"),
                ("cancel_requested", json!({})),
            ],
            Scenario::CancelEarly => vec![("cancel_requested", json!({}))],
            Scenario::ShipThenCancel => vec![
                pay(TOTAL, "pay"),
                ("shipped", json!({})),
                ("cancel_requested", json!({})),
            ],
        }
    }

    fn expected(self) -> (&'static str, Vec<Step>) {
        let created_ok = ("created", "transitioned", "created", "awaiting_payment");
        let paid = (
            "payment_received",
            "transitioned",
            "awaiting_payment",
            "paid",
        );
        match self {
            Scenario::Empty => (
                "processed",
                vec![("created", "transitioned", "created", "processed")],
            ),
            Scenario::Invalid(_) => (
                "rejected",
                vec![("created", "transitioned", "created", "rejected")],
            ),
            Scenario::PayShip => (
                "shipped",
                vec![
                    created_ok,
                    paid,
                    ("shipped", "transitioned", "paid", "shipped"),
                ],
            ),
            Scenario::UnderpayPayCancel => (
                "cancelled",
                vec![
                    created_ok,
                    (
                        "payment_received",
                        "rejected",
                        "awaiting_payment",
                        "awaiting_payment",
                    ),
                    paid,
                    ("cancel_requested", "transitioned", "paid", "cancelled"),
                ],
            ),
            Scenario::CancelEarly => (
                "cancelled",
                vec![
                    created_ok,
                    (
                        "cancel_requested",
                        "transitioned",
                        "awaiting_payment",
                        "cancelled",
                    ),
                ],
            ),
            Scenario::ShipThenCancel => (
                "shipped",
                vec![
                    created_ok,
                    paid,
                    ("shipped", "transitioned", "paid", "shipped"),
                    ("cancel_requested", "rejected", "shipped", "shipped"),
                ],
            ),
        }
    }
}

/// 2 × 9.99 + 1 × 5.00.
const TOTAL: f64 = 24.98;

fn scenarios() -> Vec<Scenario> {
    let mut all = Vec::new();
    all.extend(std::iter::repeat_n(Scenario::Empty, 40));
    all.extend((0..40).map(|i| Scenario::Invalid((i % 3) as u8)));
    all.extend(std::iter::repeat_n(Scenario::PayShip, 40));
    all.extend(std::iter::repeat_n(Scenario::UnderpayPayCancel, 30));
    all.extend(std::iter::repeat_n(Scenario::CancelEarly, 25));
    all.extend(std::iter::repeat_n(Scenario::ShipThenCancel, 25));
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_orders_reach_their_expected_status_exactly_once() {
    let mut host = TestHost::start(config("order")).await;
    let mut backends = Backends::connect(&host.config).await;
    let all = scenarios();
    assert_eq!(all.len(), 200);

    // POST every order concurrently; each order's events follow its 201 in order.
    let started = Instant::now();
    let host_ref = &host;
    let placed: Vec<(Uuid, Scenario)> = futures::stream::iter(all.into_iter().enumerate())
        .map(|(n, scenario)| async move {
            let order_id = host_ref.create_order(scenario.body(n).as_ref()).await;
            // A GET right after the 201 never says 404.
            let view = host_ref.order(order_id).await;
            assert_eq!(view["order_id"], order_id.to_string());
            for (kind, data) in scenario.events(order_id) {
                host_ref.post_event(order_id, kind, data).await;
            }
            (order_id, scenario)
        })
        .buffer_unordered(32)
        .collect()
        .await;
    println!(
        "posted 200 orders and their events in {:?}",
        started.elapsed()
    );

    let mut lost = 0;
    let mut duplicated = 0;
    let mut mismatched = Vec::new();
    for (order_id, scenario) in &placed {
        let (final_status, steps) = scenario.expected();
        let view = host
            .wait_for_version(*order_id, steps.len() as u64, Duration::from_secs(120))
            .await;
        let history = host.history(*order_id).await;
        if history.len() < steps.len() {
            lost += 1;
        }
        duplicated += history.len().saturating_sub(steps.len());
        let seen: Vec<(String, String, String, String)> = history
            .iter()
            .map(|h| {
                let field = |k: &str| h[k].as_str().unwrap_or_default().to_owned();
                (
                    field("event_type"),
                    field("outcome"),
                    field("from"),
                    field("to"),
                )
            })
            .collect();
        let wanted: Vec<(String, String, String, String)> = steps
            .iter()
            .map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d.to_string()))
            .collect();
        if seen != wanted {
            mismatched.push(format!("{order_id} ({scenario:?}): {seen:?}"));
            continue;
        }
        let seqs: Vec<u64> = history.iter().map(|h| h["seq"].as_u64().unwrap()).collect();
        assert_eq!(
            seqs,
            (1..=steps.len() as u64).collect::<Vec<_>>(),
            "{order_id}"
        );
        let event_ids: HashSet<&str> = history
            .iter()
            .map(|h| h["event_id"].as_str().unwrap())
            .collect();
        assert_eq!(
            event_ids.len(),
            history.len(),
            "{order_id}: an event recorded twice"
        );
        for entry in &history {
            assert_eq!(entry["plugin"], "order");
            assert_eq!(entry["plugin_version"], "0.1.0");
            assert!(
                entry["at"].as_str().is_some_and(|at| at.ends_with('Z')),
                "{entry}"
            );
        }
        if matches!(scenario, Scenario::UnderpayPayCancel) {
            assert!(
                history[1]["reason"].as_str().unwrap().contains("less than"),
                "{}",
                history[1]
            );
        }

        assert_eq!(view["status"], final_status, "{order_id} through GET");
        assert_eq!(view["version"], steps.len() as u64);
        assert_eq!(
            backends
                .cassandra_status_at(*order_id, steps.len() as u64, Duration::from_secs(10))
                .await,
            Some((final_status.to_string(), steps.len() as u64)),
            "{order_id} in Cassandra"
        );
        assert_eq!(
            backends.redis_status(*order_id).await,
            Some((final_status.to_string(), steps.len() as u64)),
            "{order_id} in Redis"
        );
        if !matches!(scenario, Scenario::Empty | Scenario::Invalid(_)) {
            assert_eq!(view["attributes"]["total"], json!(TOTAL), "{view}");
        }
    }
    println!(
        "200 orders: lost {lost}, duplicated transitions {duplicated}, mismatched {}",
        mismatched.len()
    );
    assert!(
        mismatched.is_empty(),
        "unexpected histories:\n{}",
        mismatched.join("\n")
    );
    assert_eq!(lost, 0);
    assert_eq!(duplicated, 0);
    assert_eq!(host.metric("orderpipe_orders_accepted_total").await, 200.0);
    // Every recorded event was timed through its steps, for an operator asking where the
    // time goes.
    let recorded: usize = placed
        .iter()
        .map(|(_, scenario)| scenario.expected().1.len())
        .sum();
    for step in ["decide", "record", "cache"] {
        let timed = host
            .metric(&format!(
                "orderpipe_worker_event_step_seconds_count{{step=\"{step}\"}}"
            ))
            .await;
        assert!(
            timed >= recorded as f64,
            "{timed} events timed in step {step}, {recorded} recorded"
        );
    }
    // The GETs above were answered through the near cache in front of Redis, which tracks
    // the order keys: its metrics say so.
    assert_eq!(host.metric("orderpipe_near_cache_serving").await, 1.0);
    let near_cache_reads = host
        .metric("orderpipe_near_cache_reads_total{result=\"hit\"}")
        .await
        + host
            .metric("orderpipe_near_cache_reads_total{result=\"miss\"}")
            .await;
    assert!(
        near_cache_reads > 0.0,
        "reads through the near cache counted"
    );
    host.stop().await;
}
