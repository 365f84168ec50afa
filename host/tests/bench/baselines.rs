//! The baselines written by hand: raw rdkafka production, bare Cassandra loops through the
//! store's own prepared statements, and the order workflow as a native Rust event handler
//! run by the same worker loop as the Wasm pipeline.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use orderpipe::backend::{Applied, BackendError, OrderStore, StatusCache};
use orderpipe::config::Config;
use orderpipe::order::{HistoryEntry, Order, OrderRequest, Outcome, now_ms};
use orderpipe::pipeline::health::WorkerHealth;
use orderpipe::pipeline::message::EventMessage;
use orderpipe::pipeline::processor::{Handled, Interrupted, MessageOrigin};
use orderpipe::pipeline::worker::EventHandler;
use orderpipe::plugin::PluginHost;
use orderpipe::telemetry::Metrics;
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::report::percentile;

/// Throughput and latency of a closed loop of concurrent clients.
#[derive(Debug, Clone, Copy)]
pub struct LoopResult {
    pub rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

fn summarize(mut latencies: Vec<Duration>, elapsed: Duration) -> LoopResult {
    latencies.sort_unstable();
    let ms = |d: Option<Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    LoopResult {
        rate: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: ms(percentile(&latencies, 0.50)),
        p99_ms: ms(percentile(&latencies, 0.99)),
    }
}

/// Runs `step` in `clients` concurrent closed loops for `duration`.
async fn closed_loop<F, Fut>(clients: u32, duration: Duration, step: F) -> LoopResult
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let started = Instant::now();
    let end = started + duration;
    let counter = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (step, counter) = (step.clone(), counter.clone());
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < end {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let at = Instant::now();
                step(n).await;
                latencies.push(at.elapsed());
            }
            latencies
        });
    }
    let mut all = Vec::new();
    while let Some(latencies) = tasks.join_next().await {
        all.extend(latencies.expect("loop task"));
    }
    summarize(all, started.elapsed())
}

/// The `created` message the API publishes for an order.
pub fn created_message(order_id: Uuid, request: &OrderRequest) -> Vec<u8> {
    EventMessage::created(order_id, request.clone(), now_ms()).encode()
}

/// Raw rdkafka: the same messages, the same producer settings as the API's (idempotent,
/// `acks=all`, linger 1 ms), `clients` concurrent sends each awaiting its acknowledgement.
pub async fn kafka_produce(config: &Config, clients: u32, duration: Duration) -> LoopResult {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &config.kafka.brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "1")
        .create()
        .expect("producer");
    let topic: Arc<str> = config.kafka.topic.clone().into();
    let request: OrderRequest = serde_json::from_str(crate::http::ORDER_BODY).expect("order body");
    let request = Arc::new(request);
    closed_loop(clients, duration, move |_| {
        let (producer, topic, request) = (producer.clone(), topic.clone(), request.clone());
        async move {
            let id = Uuid::new_v4();
            let key = id.to_string();
            let payload = created_message(id, &request);
            producer
                .send(
                    FutureRecord::to(&topic).key(&key).payload(&payload),
                    Timeout::After(Duration::from_secs(5)),
                )
                .await
                .expect("kafka acknowledges");
        }
    })
    .await
}

/// Bare reads: `load_order` (the store's prepared SELECT) of random known orders.
pub async fn cassandra_select(
    store: Arc<dyn OrderStore>,
    ids: Arc<Vec<Uuid>>,
    clients: u32,
    duration: Duration,
) -> LoopResult {
    closed_loop(clients, duration, move |n| {
        let (store, ids) = (store.clone(), ids.clone());
        async move {
            let id = ids[(n as usize * 7919) % ids.len()];
            store
                .load_order(id)
                .await
                .expect("read")
                .expect("order exists");
        }
    })
    .await
}

/// The rows one processed order costs, written with nothing else around them: the order,
/// its recorded event (the conditional batch), the status projection and the plugin's row.
pub async fn cassandra_write_rows(
    store: Arc<dyn OrderStore>,
    plugin_host: PluginHost,
    orders: u64,
    clients: u32,
) -> (f64, Vec<Uuid>) {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (store, host, next) = (store.clone(), plugin_host.clone(), next.clone());
        tasks.spawn(async move {
            let mut ids = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < orders {
                let order = Order::new(Uuid::new_v4(), OrderRequest::default(), now_ms());
                store.store_accepted_order(&order).await.expect("store");
                let (updated, entry) = processed(&order, Uuid::new_v4(), "created");
                host.store
                    .put(
                        "order",
                        "orders-by-customer",
                        &format!("anonymous/{}", order.id),
                        "0",
                    )
                    .await
                    .expect("plugin row");
                let applied = store
                    .record_event(&updated, order.version, &entry)
                    .await
                    .expect("record");
                assert_eq!(applied, Applied::Yes);
                store.project_status(&updated).await.expect("project");
                ids.push(order.id);
            }
            ids
        });
    }
    let mut ids = Vec::new();
    while let Some(written) = tasks.join_next().await {
        ids.extend(written.expect("writer"));
    }
    (ids.len() as f64 / started.elapsed().as_secs_f64(), ids)
}

/// `order` moved to `processed` by event `event_id`, and its history entry.
fn processed(order: &Order, event_id: Uuid, kind: &str) -> (Order, HistoryEntry) {
    let now = now_ms();
    let mut updated = order.clone();
    updated.version = order.version + 1;
    updated.updated_at_ms = now.max(order.updated_at_ms);
    updated.status = "processed".into();
    let entry = HistoryEntry {
        seq: updated.version,
        event_id,
        event_type: kind.into(),
        outcome: Outcome::Transitioned,
        from: order.status.clone(),
        to: updated.status.clone(),
        reason: "order has no items".into(),
        plugin: "native".into(),
        plugin_version: "0".into(),
        at_ms: now,
    };
    (updated, entry)
}

/// The order plugin's `created` workflow for an order without items, written in Rust
/// against the same backends and run by the same worker loop: decode, load (create on first
/// sight), skip a recorded event, file the order under its customer (store) and count it
/// (cache) as the plugin does, record with the version check, project, done.
pub struct NativeOrderHandler {
    pub store: Arc<dyn OrderStore>,
    pub cache: Arc<dyn StatusCache>,
    pub plugin_host: PluginHost,
    pub health: WorkerHealth,
    pub metrics: Metrics,
    pub processed: AtomicU64,
}

impl NativeOrderHandler {
    async fn process(&self, message: &EventMessage) -> Result<Handled, BackendError> {
        let event = &message.event;
        loop {
            let Some(stored) = self.store.load_order(event.order_id).await? else {
                let request = message.order.clone().unwrap_or_default();
                let order = Order::new(event.order_id, request, event.at_ms);
                self.store.store_accepted_order(&order).await?;
                continue;
            };
            if stored.recorded_events.contains(&event.id) {
                return Ok(Handled::AlreadyRecorded);
            }
            let order = stored.order;
            let customer = order.request.customer.as_deref().unwrap_or("anonymous");
            let key = format!("{customer}/{}", order.id);
            self.plugin_host
                .store
                .put("order", "orders-by-customer", &key, "0")
                .await?;
            self.plugin_host
                .cache
                .incr("order", "orders-created", 1)
                .await?;
            let (updated, entry) = processed(&order, event.id, &event.kind);
            match self
                .store
                .record_event(&updated, order.version, &entry)
                .await?
            {
                Applied::Yes => {
                    self.store.project_status(&updated).await?;
                    self.cache.put(&updated.view()).await?;
                    return Ok(Handled::Recorded(Outcome::Transitioned));
                }
                Applied::VersionConflict => continue,
            }
        }
    }
}

#[async_trait::async_trait]
impl EventHandler for NativeOrderHandler {
    async fn handle(
        &self,
        payload: &[u8],
        _origin: &MessageOrigin,
        shutdown: &CancellationToken,
    ) -> Result<Handled, Interrupted> {
        let message = EventMessage::decode(payload).expect("bench messages decode");
        loop {
            match self.process(&message).await {
                Ok(handled) => {
                    self.processed.fetch_add(1, Ordering::Relaxed);
                    return Ok(handled);
                }
                Err(error) => {
                    eprintln!("native handler: {error}; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                        _ = shutdown.cancelled() => return Err(Interrupted),
                    }
                }
            }
        }
    }

    fn pipeline(&self) -> &str {
        "orders"
    }

    fn health(&self) -> &WorkerHealth {
        &self.health
    }

    fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}
