//! Hands each change heard on the change feed to the streams that want it, and only to them.
//!
//! One task per host (the router) holds the host's one feed subscription while any stream is
//! open. A stream of one order listens on that order's own small channel, so a change wakes
//! only the streams of its order, not every open stream; pipeline streams share one channel
//! of every change. When the router falls behind the feed (or the feed re-subscribed), every
//! stream is told it may have missed changes and reads the store.
//!
//! A stream registers (under the lock the router dispatches under) before it reads the
//! store, and the router is subscribed to the feed before the first registration returns:
//! so whatever the store does not hold yet when the stream reads it reaches the stream. The
//! hub never reads or writes the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast;
use uuid::Uuid;

use crate::backend::feed::{ChangeFeed, ChangeSubscription, FeedItem};

/// Changes one order's streams may fall behind by before they read the store (orders change
/// a few times, not thousands: a small buffer per followed order keeps memory per stream low).
const ORDER_BUFFER: usize = 16;
/// How often the router forgets orders nobody follows any more, and stops when nobody
/// streams at all.
const SWEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The host's stream fan-out.
pub struct StreamHub {
    feed: Arc<dyn ChangeFeed>,
    /// Held while the router is started or stopped, so a stream registering then is never
    /// left without a router.
    running: tokio::sync::Mutex<bool>,
    routes: Mutex<Routes>,
}

struct Routes {
    /// The channel of each order some stream follows.
    orders: HashMap<Uuid, broadcast::Sender<FeedItem>>,
    /// Every change, for pipeline streams.
    everything: broadcast::Sender<FeedItem>,
}

impl StreamHub {
    /// A hub over `feed`; pipeline streams may fall `buffer` changes behind.
    pub fn new(feed: Arc<dyn ChangeFeed>, buffer: usize) -> Self {
        Self {
            feed,
            running: tokio::sync::Mutex::new(false),
            routes: Mutex::new(Routes {
                orders: HashMap::new(),
                everything: broadcast::channel(buffer.max(1)).0,
            }),
        }
    }

    fn routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.routes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The changes of one order (`Some(id)`) or of every order (`None`) from now on: once
    /// this returns, every change recorded later reaches the subscription.
    pub(super) async fn subscribe(self: &Arc<Self>, order: Option<Uuid>) -> ChangeSubscription {
        let mut running = self.running.lock().await;
        let receiver = {
            let mut routes = self.routes();
            match order {
                Some(order_id) => routes
                    .orders
                    .entry(order_id)
                    .or_insert_with(|| broadcast::channel(ORDER_BUFFER).0)
                    .subscribe(),
                None => routes.everything.subscribe(),
            }
        };
        if !*running {
            // Subscribed to the feed before any stream reads the store.
            let subscription = self.feed.subscribe().await;
            tokio::spawn(self.clone().route(subscription));
            *running = true;
        }
        ChangeSubscription::new(receiver)
    }

    /// The router: dispatches the feed until nobody streams (or the feed is gone).
    async fn route(self: Arc<Self>, mut subscription: ChangeSubscription) {
        let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
        loop {
            tokio::select! {
                item = subscription.next() => match item {
                    Some(item) => self.dispatch(item),
                    None => {
                        *self.running.lock().await = false;
                        return;
                    }
                },
                _ = sweep.tick() => {
                    if self.sweep().await {
                        return;
                    }
                }
            }
        }
    }

    fn dispatch(&self, item: FeedItem) {
        let mut routes = self.routes();
        match &item {
            FeedItem::Change(change) => {
                let order_id = change.order_id;
                if let Some(sender) = routes.orders.get(&order_id)
                    && sender.send(item.clone()).is_err()
                {
                    routes.orders.remove(&order_id);
                }
            }
            FeedItem::MayHaveMissed => {
                for sender in routes.orders.values() {
                    let _ = sender.send(FeedItem::MayHaveMissed);
                }
            }
        }
        // No pipeline stream open is not an error.
        let _ = routes.everything.send(item);
    }

    /// Forgets orders nobody follows; stops the router (`true`) when nobody streams.
    async fn sweep(&self) -> bool {
        let mut running = self.running.lock().await;
        let mut routes = self.routes();
        routes
            .orders
            .retain(|_, sender| sender.receiver_count() > 0);
        if routes.orders.is_empty() && routes.everything.receiver_count() == 0 {
            *running = false;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::embedded::InProcessFeed;
    use crate::backend::feed::Change;
    use crate::order::{HistoryEntry, Order, OrderRequest, Outcome};

    fn change(order_id: Uuid, version: u64) -> Change {
        let mut order = Order::new(order_id, OrderRequest::default(), 0);
        order.version = version;
        let entry = HistoryEntry {
            seq: version,
            event_id: Uuid::new_v4(),
            event_type: "shipped".into(),
            outcome: Outcome::Transitioned,
            from: "paid".into(),
            to: "shipped".into(),
            reason: "test".into(),
            plugin: "order".into(),
            plugin_version: "1.0.0".into(),
            at_ms: 0,
        };
        Change::recorded(&order, &entry)
    }

    async fn next_version(subscription: &mut ChangeSubscription) -> Option<u64> {
        match tokio::time::timeout(Duration::from_millis(200), subscription.next()).await {
            Ok(Some(FeedItem::Change(change))) => Some(change.version),
            Ok(other) => panic!("unexpected {other:?}"),
            Err(_) => None,
        }
    }

    #[tokio::test]
    async fn an_order_stream_hears_only_its_order_and_a_pipeline_stream_every_order() {
        let feed = Arc::new(InProcessFeed::new(16));
        let hub = Arc::new(StreamHub::new(feed.clone(), 16));
        let (mine, other) = (Uuid::new_v4(), Uuid::new_v4());
        let mut order_stream = hub.subscribe(Some(mine)).await;
        let mut pipeline_stream = hub.subscribe(None).await;
        feed.publish(&change(other, 7)).await.unwrap();
        feed.publish(&change(mine, 1)).await.unwrap();
        assert_eq!(next_version(&mut order_stream).await, Some(1));
        assert_eq!(
            next_version(&mut order_stream).await,
            None,
            "not the other order's"
        );
        assert_eq!(next_version(&mut pipeline_stream).await, Some(7));
        assert_eq!(next_version(&mut pipeline_stream).await, Some(1));
    }

    #[tokio::test]
    async fn orders_nobody_follows_are_forgotten_and_then_the_router_stops() {
        let feed = Arc::new(InProcessFeed::new(16));
        let hub = Arc::new(StreamHub::new(feed.clone(), 16));
        let kept = hub.subscribe(Some(Uuid::new_v4())).await;
        let subscription = hub.subscribe(Some(Uuid::new_v4())).await;
        drop(subscription);
        assert!(!hub.sweep().await, "a stream is still open");
        assert_eq!(
            hub.routes().orders.len(),
            1,
            "the closed stream's order is forgotten"
        );
        drop(kept);
        assert!(hub.sweep().await, "nobody streams: the router stops");
        assert!(!*hub.running.lock().await);
    }

    /// What the per-order channels save: `streams` order streams, `changes` changes of other
    /// orders, each stream on the hub against each on the raw feed (woken by every change).
    /// `cargo test -p orderpipe --lib -- --ignored --nocapture fan_out`
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "a measurement, not a check"]
    async fn fan_out_cost_per_change() {
        const STREAMS: usize = 1_000;
        const CHANGES: usize = 2_000;
        for through_hub in [false, true] {
            let feed = Arc::new(InProcessFeed::new(CHANGES * 2));
            let hub = Arc::new(StreamHub::new(feed.clone(), CHANGES * 2));
            let target = Uuid::new_v4();
            let mut tasks = Vec::new();
            for _ in 0..STREAMS {
                let mut subscription = if through_hub {
                    hub.subscribe(Some(target)).await
                } else {
                    feed.subscribe().await
                };
                tasks.push(tokio::spawn(async move {
                    // Each stream waits for its order's change, skipping the others'.
                    while let Some(item) = subscription.next().await {
                        if let FeedItem::Change(change) = item
                            && change.order_id == target
                        {
                            return;
                        }
                    }
                }));
            }
            let started = std::time::Instant::now();
            for _ in 0..CHANGES {
                feed.publish(&change(Uuid::new_v4(), 1)).await.unwrap();
            }
            feed.publish(&change(target, 1)).await.unwrap();
            for task in tasks {
                task.await.unwrap();
            }
            let elapsed = started.elapsed();
            println!(
                "{STREAMS} order streams, {CHANGES} changes of other orders, {}: {elapsed:?} ({:.1} µs per change)",
                if through_hub {
                    "per-order channels (hub)"
                } else {
                    "every stream on the feed"
                },
                elapsed.as_secs_f64() * 1e6 / CHANGES as f64
            );
        }
    }
}
