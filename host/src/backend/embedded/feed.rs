//! The change feed inside one process: the embedded event log belongs to one process, so the
//! worker that records a change and the API that streams it live side by side.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::backend::BackendResult;
use crate::backend::feed::{Change, ChangeFeed, ChangeSubscription, FeedItem};

/// In-process change feed: a broadcast channel of `buffer` changes.
#[derive(Clone)]
pub struct InProcessFeed {
    sender: broadcast::Sender<FeedItem>,
}

impl InProcessFeed {
    pub fn new(buffer: usize) -> Self {
        Self {
            sender: broadcast::channel(buffer.max(1)).0,
        }
    }
}

#[async_trait]
impl ChangeFeed for InProcessFeed {
    async fn publish(&self, change: &Change) -> BackendResult<()> {
        // No subscriber (nobody streams now) is not an error: nobody needs to hear it.
        let _ = self.sender.send(FeedItem::Change(Arc::new(change.clone())));
        Ok(())
    }

    async fn subscribe(&self) -> ChangeSubscription {
        ChangeSubscription::new(self.sender.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::order::{HistoryEntry, Order, OrderRequest, Outcome};

    fn change(version: u64) -> Change {
        let mut order = Order::new(Uuid::new_v4(), OrderRequest::default(), 0);
        order.version = version;
        let entry = HistoryEntry {
            seq: version,
            event_id: Uuid::new_v4(),
            event_type: "paid".into(),
            outcome: Outcome::Transitioned,
            from: "created".into(),
            to: "paid".into(),
            reason: "test".into(),
            plugin: "order".into(),
            plugin_version: "1.0.0".into(),
            at_ms: 0,
        };
        Change::recorded(&order, &entry)
    }

    #[tokio::test]
    async fn a_subscriber_hears_changes_published_after_it_subscribed() {
        let feed = InProcessFeed::new(8);
        feed.publish(&change(1)).await.unwrap();
        let mut subscription = feed.subscribe().await;
        feed.publish(&change(2)).await.unwrap();
        match subscription.next().await {
            Some(FeedItem::Change(heard)) => assert_eq!(heard.version, 2),
            other => panic!("expected version 2, heard {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_subscriber_that_fell_behind_is_told_it_may_have_missed_changes() {
        let feed = InProcessFeed::new(2);
        let mut subscription = feed.subscribe().await;
        for version in 1..=5 {
            feed.publish(&change(version)).await.unwrap();
        }
        assert!(matches!(
            subscription.next().await,
            Some(FeedItem::MayHaveMissed)
        ));
    }
}
