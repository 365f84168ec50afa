//! The change feed role: after the worker recorded an event, it tells every host which
//! order changed and how (the new version, the status, the history entry), so a host can
//! push it to the clients streaming that order, whichever host decided it.
//!
//! The feed is a hint, never the truth: a message may be lost (a publisher that failed, a
//! subscription that dropped, a subscriber that fell behind). What was lost is always in
//! the order store, so a subscriber that is told it may have missed something
//! ([`FeedItem::MayHaveMissed`]), or that sees a version jump, reads the store's history.
//! Nothing here may ever fail or stall the pipeline, and nothing may be published before the
//! order store recorded it.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use uuid::Uuid;

use super::BackendResult;
use crate::order::{HistoryEntry, Order};

/// One recorded change of an order: what a subscriber needs to tell a client, without
/// reading the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub pipeline: String,
    pub order_id: Uuid,
    /// The order's version after this change (the entry's `seq`).
    pub version: u64,
    /// The order's status after this change.
    pub status: String,
    /// The order's `customer`, so a subscriber can filter without reading the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    pub entry: HistoryEntry,
}

impl Change {
    /// The change that recording `entry` made to `order` (as it is after it).
    pub fn recorded(order: &Order, entry: &HistoryEntry) -> Self {
        Self {
            pipeline: order.pipeline.clone(),
            order_id: order.id,
            version: order.version,
            status: order.status.clone(),
            customer: order.request.customer.clone(),
            entry: entry.clone(),
        }
    }
}

/// What a subscriber hears.
#[derive(Debug, Clone)]
pub enum FeedItem {
    Change(Arc<Change>),
    /// Changes may have been missed (the subscription was re-established, or this subscriber
    /// fell behind): read the store again.
    MayHaveMissed,
}

/// Every change of every pipeline from the moment it was made, as a bounded broadcast: a
/// subscriber more than the buffer behind hears [`FeedItem::MayHaveMissed`] instead of the
/// changes it missed.
pub struct ChangeSubscription {
    receiver: broadcast::Receiver<FeedItem>,
}

impl ChangeSubscription {
    pub(crate) fn new(receiver: broadcast::Receiver<FeedItem>) -> Self {
        Self { receiver }
    }

    /// The next item; `None` once the feed is gone.
    pub async fn next(&mut self) -> Option<FeedItem> {
        match self.receiver.recv().await {
            Ok(item) => Some(item),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(FeedItem::MayHaveMissed),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

#[async_trait]
pub trait ChangeFeed: Send + Sync {
    /// Tells every subscribed host (this one included) about `change`. Best effort: an error
    /// only means subscribers find the change in the store later.
    async fn publish(&self, change: &Change) -> BackendResult<()>;
    /// Every change published from now on. Returns once the subscription is in place (or,
    /// when the feed cannot confirm it within its timeout, at once: the subscription then
    /// yields [`FeedItem::MayHaveMissed`] when it is established), so a caller may read the
    /// store after this returns without missing a change in between.
    async fn subscribe(&self) -> ChangeSubscription;
}
