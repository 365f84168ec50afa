//! Puts each recorded change on the change feed, for the hosts streaming that order.
//!
//! Called only after the order store recorded the entry and the order's new version, never
//! before. Publishing runs in the background with a bounded number in flight: a slow or
//! unreachable feed neither fails nor stalls the pipeline. A change that cannot be published
//! is counted (`orderpipe_feed_publish_failures_total`) and logged; streams find it in the
//! store (they read the history on a version jump and periodically).

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::backend::feed::{Change, ChangeFeed};
use crate::order::{HistoryEntry, Order};
use crate::telemetry::Metrics;

/// Publications in flight at once; past it a change is dropped (and counted) rather than
/// queued, so a stuck feed cannot grow the worker's memory.
const MAX_IN_FLIGHT: usize = 1_024;

/// The worker's side of the change feed.
#[derive(Clone)]
pub struct ChangePublisher {
    feed: Arc<dyn ChangeFeed>,
    in_flight: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

impl ChangePublisher {
    pub fn new(feed: Arc<dyn ChangeFeed>, metrics: Arc<Metrics>) -> Self {
        Self {
            feed,
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            metrics,
        }
    }

    /// Announces that `entry` was recorded and moved the order to `order` (already durable).
    /// Returns at once.
    pub fn recorded(&self, order: &Order, entry: &HistoryEntry) {
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            self.metrics
                .feed_publish_failures
                .with_label_values(&["overloaded"])
                .inc();
            tracing::warn!(order_id = %order.id, version = order.version, "change feed overloaded; change not published (streams read it from the store)");
            return;
        };
        let change = Change::recorded(order, entry);
        let feed = self.feed.clone();
        let metrics = self.metrics.clone();
        tokio::spawn(async move {
            if let Err(error) = feed.publish(&change).await {
                metrics
                    .feed_publish_failures
                    .with_label_values(&["unavailable"])
                    .inc();
                tracing::warn!(order_id = %change.order_id, version = change.version, %error, "change not published (streams read it from the store)");
            }
            drop(permit);
        });
    }
}
