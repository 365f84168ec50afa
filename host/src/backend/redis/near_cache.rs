//! The near cache: order views kept in this process in front of Redis, so a repeated
//! `GET /api/<pipeline>/<id>` is answered from memory instead of a Redis round trip, and kept
//! coherent by Redis's server-assisted client-side caching. One RESP3 connection asks for
//! `CLIENT TRACKING ON BCAST PREFIX <key_prefix>:order:`; Redis then pushes the name of every
//! order key any client changes, deletes or lets expire, and the near cache forgets it.
//!
//! What keeps it no older than Redis, beyond the moment a push takes to arrive:
//! - Nothing is served or kept unless the tracking connection is up. When it drops (or stops
//!   answering [`PING_INTERVAL`]'s ping) everything is forgotten and Redis is asked until
//!   tracking is on again; when Redis says it flushed, everything is forgotten.
//! - A view read from Redis is kept only if no push about its key (nor a reconnect) arrived
//!   since the read was sent ([`Ticket`]): a push that overtakes the reply cannot leave the
//!   old view behind.
//! - This process's own writes forget the key before and after they are sent
//!   ([`NearCache::forget`]), so the process always reads its own writes.
//!
//! Bounded by `redis.near_cache_max_bytes` (the views' JSON sizes; least recently and least
//! frequently used views go first). 0 turns it off.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use prometheus::core::Collector;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts};
use redis::{AsyncConnectionConfig, PushInfo, PushKind, Value};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::{CancellationToken, DropGuard};
use uuid::Uuid;

use crate::order::OrderView;

/// Independent invalidation counters; a key uses the one its id falls on.
const STRIPES: usize = 1024;
/// How often the tracking connection is pinged: a connection that stopped answering
/// without closing (a dead peer) is noticed within this plus the response timeout.
pub const PING_INTERVAL: Duration = Duration::from_secs(1);
/// The pause before connecting again after the tracking connection failed.
pub const RECONNECT_PAUSE: Duration = Duration::from_millis(500);

/// A cached view and its JSON size (its weight against the bound).
struct Entry {
    view: OrderView,
    bytes: u32,
}

/// Whether views may be served and kept, and the generation of the tracking connection.
#[derive(Clone, Copy)]
struct Tracking {
    on: bool,
    epoch: u64,
}

/// Taken before a Redis read: what must not have changed for its answer to be kept.
#[derive(Clone, Copy)]
pub struct Ticket {
    stripe: usize,
    pushes: u64,
    epoch: u64,
}

/// Order views by id, valid while Redis tracks this process's connection.
pub struct NearCache {
    entries: moka::sync::Cache<Uuid, Arc<Entry>>,
    /// Pushes (and own writes) seen per stripe of ids.
    stripes: Box<[Mutex<u64>]>,
    /// Read on every keep, written on connect, disconnect and flush: a keep never straddles
    /// a change of generation.
    tracking: RwLock<Tracking>,
    /// `tracking.on`, for the lock-free read of every `get`.
    serving: AtomicBool,
    /// `<key_prefix>:order:`: the keys tracked, and how an id is found in a pushed key.
    order_keys: String,
    /// `near_cache_reads_total{result}`: `hit`, `miss`, or `off` (tracking down).
    reads: IntCounterVec,
    /// Its three series, resolved once: every `GET` counts one.
    hits: IntCounter,
    misses: IntCounter,
    reads_off: IntCounter,
    /// `near_cache_serving`: 1 while views are served from memory.
    serving_gauge: IntGauge,
    /// Stops the tracking task when the cache goes.
    _stop: DropGuard,
}

impl NearCache {
    /// A near cache of at most `max_bytes` of views, for the keys under `order_keys`, kept
    /// coherent through `client` (which must speak RESP3). Spawns its tracking task.
    pub fn start(
        client: redis::Client,
        order_keys: String,
        max_bytes: u64,
        timeout: Duration,
    ) -> Arc<Self> {
        let stop = CancellationToken::new();
        let reads = IntCounterVec::new(
            Opts::new(
                "near_cache_reads_total",
                "Order views asked of the near cache: hit, miss, or off (Redis not tracking)",
            ),
            &["result"],
        )
        .expect("valid metric");
        let cache = Arc::new(Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_, entry: &Arc<Entry>| entry.bytes)
                .build(),
            stripes: (0..STRIPES).map(|_| Mutex::new(0)).collect(),
            tracking: RwLock::new(Tracking {
                on: false,
                epoch: 0,
            }),
            serving: AtomicBool::new(false),
            order_keys,
            hits: reads.with_label_values(&["hit"]),
            misses: reads.with_label_values(&["miss"]),
            reads_off: reads.with_label_values(&["off"]),
            reads,
            serving_gauge: IntGauge::new(
                "near_cache_serving",
                "1 while Redis tracks the order keys and the near cache serves views",
            )
            .expect("valid metric"),
            _stop: stop.clone().drop_guard(),
        });
        tokio::spawn(follow(Arc::downgrade(&cache), client, timeout, stop));
        cache
    }

    /// The view of `id`, when it is cached and tracking is on.
    pub fn get(&self, id: Uuid) -> Option<OrderView> {
        if !self.serving.load(Ordering::Acquire) {
            self.reads_off.inc();
            return None;
        }
        let view = self.entries.get(&id).map(|entry| entry.view.clone());
        match view {
            Some(_) => self.hits.inc(),
            None => self.misses.inc(),
        }
        view
    }

    /// Reads answered so far with `result` (`hit`, `miss`, `off`).
    pub fn reads(&self, result: &str) -> u64 {
        self.reads.with_label_values(&[result]).get()
    }

    /// The near cache's metrics, for the host's registry.
    pub fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.reads.clone()),
            Box::new(self.serving_gauge.clone()),
        ]
    }

    /// Taken before reading `id` from Redis; `None` while tracking is off (nothing is kept).
    pub fn ticket(&self, id: Uuid) -> Option<Ticket> {
        let tracking = *self.tracking.read().unwrap_or_else(|e| e.into_inner());
        if !tracking.on {
            return None;
        }
        let stripe = stripe_of(id);
        Some(Ticket {
            stripe,
            pushes: *self.stripes[stripe]
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
            epoch: tracking.epoch,
        })
    }

    /// Keeps `view` (read from Redis as `bytes` of JSON under `ticket`) unless its key was
    /// pushed, or the connection changed, since the ticket.
    pub fn keep(&self, ticket: Ticket, view: OrderView, bytes: usize) {
        let tracking = self.tracking.read().unwrap_or_else(|e| e.into_inner());
        let pushes = self.stripes[ticket.stripe]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if tracking.on && tracking.epoch == ticket.epoch && *pushes == ticket.pushes {
            let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
            self.entries
                .insert(view.order_id, Arc::new(Entry { view, bytes }));
        }
    }

    /// Forgets `id` and voids the tickets taken for its stripe so far.
    pub fn forget(&self, id: Uuid) {
        let mut pushes = self.stripes[stripe_of(id)]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *pushes += 1;
        self.entries.invalidate(&id);
    }

    /// Views held now (moka counts lazily: pending work is run first).
    pub fn entry_count(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }

    /// Whether views are served from memory now (the tracking connection is up).
    pub fn is_serving(&self) -> bool {
        self.serving.load(Ordering::Acquire)
    }

    /// A new generation: everything forgotten, every ticket void; then served or not.
    fn reset(&self, on: bool) {
        let mut tracking = self.tracking.write().unwrap_or_else(|e| e.into_inner());
        self.serving.store(false, Ordering::Release);
        tracking.epoch += 1;
        self.entries.invalidate_all();
        tracking.on = on;
        self.serving.store(on, Ordering::Release);
        self.serving_gauge.set(i64::from(on));
    }

    /// Applies one push of the tracking connection; `false` when the connection is gone.
    fn apply(&self, push: PushInfo) -> bool {
        match push.kind {
            PushKind::Disconnection => false,
            PushKind::Invalidate => {
                match push.data.first() {
                    Some(Value::Array(keys)) => {
                        for key in keys {
                            match self.id_of(key) {
                                Some(id) => self.forget(id),
                                // A key this cache cannot name: forget everything.
                                None => self.reset(true),
                            }
                        }
                    }
                    // Nil: Redis flushed (FLUSHALL / FLUSHDB); anything else is unknown.
                    _ => self.reset(true),
                }
                true
            }
            _ => true,
        }
    }

    fn id_of(&self, key: &Value) -> Option<Uuid> {
        let Value::BulkString(bytes) = key else {
            return None;
        };
        let key = std::str::from_utf8(bytes).ok()?;
        Uuid::parse_str(key.strip_prefix(&self.order_keys)?).ok()
    }
}

/// The tracking connection's name in `CLIENT LIST`: `near-cache:` and the tracked prefix
/// (anything but visible ASCII replaced, as Redis wants).
pub fn connection_name(order_keys: &str) -> String {
    let prefix: String = order_keys
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect();
    format!("near-cache:{prefix}")
}

fn stripe_of(id: Uuid) -> usize {
    (id.as_u64_pair().1 as usize) % STRIPES
}

/// The tracking task: connect, ask Redis to track the order keys, apply its pushes, ping;
/// on any failure stop serving, pause, start again. Ends when the cache is dropped.
async fn follow(
    cache: Weak<NearCache>,
    client: redis::Client,
    timeout: Duration,
    stop: CancellationToken,
) {
    loop {
        let (sender, pushes) = tokio::sync::mpsc::unbounded_channel();
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_push_sender(sender);
        let Some(order_keys) = cache.upgrade().map(|c| c.order_keys.clone()) else {
            return;
        };
        let connected = async {
            let mut connection = client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            redis::cmd("CLIENT")
                .arg("SETNAME")
                .arg(connection_name(&order_keys))
                .query_async::<()>(&mut connection)
                .await?;
            redis::cmd("CLIENT")
                .arg("TRACKING")
                .arg("ON")
                .arg("BCAST")
                .arg("PREFIX")
                .arg(&order_keys)
                .query_async::<()>(&mut connection)
                .await?;
            Ok::<_, redis::RedisError>(connection)
        };
        let outcome = tokio::select! {
            () = stop.cancelled() => return,
            connected = connected => connected,
        };
        match outcome {
            Ok(connection) => {
                let Some(live) = cache.upgrade() else { return };
                live.reset(true);
                drop(live);
                tracing::debug!("near cache: Redis tracks the order keys");
                let ended = serve(&cache, connection, pushes, &stop).await;
                if let Some(live) = cache.upgrade() {
                    live.reset(false);
                }
                match ended {
                    Ended::Stopped => return,
                    Ended::Lost(reason) => {
                        tracing::warn!("near cache off until Redis tracks again: {reason}")
                    }
                }
            }
            Err(error) => tracing::warn!("near cache: tracking Redis's order keys: {error}"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(RECONNECT_PAUSE) => {}
        }
    }
}

enum Ended {
    Stopped,
    Lost(String),
}

async fn serve(
    cache: &Weak<NearCache>,
    mut connection: redis::aio::MultiplexedConnection,
    mut pushes: UnboundedReceiver<PushInfo>,
    stop: &CancellationToken,
) -> Ended {
    let mut ping = tokio::time::interval(PING_INTERVAL);
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ended::Stopped,
            push = pushes.recv() => {
                let Some(push) = push else {
                    return Ended::Lost("the connection closed".into());
                };
                let Some(live) = cache.upgrade() else { return Ended::Stopped };
                if !live.apply(push) {
                    return Ended::Lost("the connection closed".into());
                }
            }
            _ = ping.tick() => {
                if let Err(error) = redis::cmd("PING").query_async::<()>(&mut connection).await {
                    return Ended::Lost(format!("ping: {error}"));
                }
            }
        }
    }
}
