//! The change feed role: [`ChangeFeed`] (which order changed, and how), against the
//! in-process implementation and Redis pub/sub. A subscriber hears every change published
//! once `subscribe` returned, of every pipeline, in order; one that falls behind its buffer
//! is told it may have missed changes instead of silently losing them.

use std::sync::Arc;
use std::time::Duration;

use orderpipe::backend::embedded::InProcessFeed;
use orderpipe::backend::feed::{Change, ChangeFeed, ChangeSubscription, FeedItem};
use orderpipe::backend::redis::feed::RedisChangeFeed;
use orderpipe::order::{HistoryEntry, Order, OrderRequest, Outcome};
use uuid::Uuid;

use crate::plugin_announcements::REDIS_SUBSCRIPTIONS;
use crate::{bounded, support};

/// The pipelines every fixture's feed carries.
const PIPELINES: [&str; 2] = ["orders", "invoices"];
/// The subscriber buffer of every fixture's feed.
const BUFFER: usize = 4;

/// One backend's change feed, on names of its own.
pub struct Feed {
    pub feed: Arc<dyn ChangeFeed>,
    _exclusive: Option<tokio::sync::MutexGuard<'static, ()>>,
}

impl Feed {
    pub async fn in_process() -> Self {
        Feed {
            feed: Arc::new(InProcessFeed::new(BUFFER)),
            _exclusive: None,
        }
    }

    pub async fn redis() -> Self {
        // support::config gives each call a key prefix (so channels) of its own.
        let config = support::config("order");
        let pipelines: Vec<String> = PIPELINES.iter().map(|p| p.to_string()).collect();
        Feed {
            _exclusive: Some(REDIS_SUBSCRIPTIONS.lock().await),
            feed: Arc::new(
                RedisChangeFeed::connect(&config.redis, &pipelines, BUFFER).expect("Redis client"),
            ),
        }
    }
}

fn change(pipeline: &str, order_id: Uuid, version: u64) -> Change {
    let mut order = Order::in_pipeline(pipeline, order_id, OrderRequest::default(), 0);
    order.version = version;
    order.status = format!("status-{version}");
    order.request.customer = Some("alice".into());
    let entry = HistoryEntry {
        seq: version,
        event_id: Uuid::new_v4(),
        event_type: "payment_received".into(),
        outcome: Outcome::Transitioned,
        from: "created".into(),
        to: order.status.clone(),
        reason: "paid in full".into(),
        plugin: "order".into(),
        plugin_version: "1.0.0".into(),
        at_ms: 1_700_000_000_000,
    };
    Change::recorded(&order, &entry)
}

/// The next change heard, skipping "may have missed" notices.
async fn next_change(subscription: &mut ChangeSubscription) -> Change {
    bounded("hearing a change", async {
        loop {
            match subscription.next().await {
                Some(FeedItem::Change(change)) => return (*change).clone(),
                Some(FeedItem::MayHaveMissed) => continue,
                None => panic!("the feed ended"),
            }
        }
    })
    .await
}

conformance!(Feed { in_process, redis }:
    a_subscriber_hears_every_change_published_after_subscribing_in_order,
    a_subscriber_that_falls_behind_is_told_it_may_have_missed_changes,
);

async fn a_subscriber_hears_every_change_published_after_subscribing_in_order(fixture: &Feed) {
    // Subscribed once subscribe returns: nothing published after it may be lost.
    let mut first = fixture.feed.subscribe().await;
    let mut second = fixture.feed.subscribe().await;
    let order = Uuid::new_v4();
    let invoice = Uuid::new_v4();
    let published = [
        change("orders", order, 1),
        change("invoices", invoice, 1),
        change("orders", order, 2),
    ];
    for change in &published {
        fixture.feed.publish(change).await.expect("publish");
    }
    for subscription in [&mut first, &mut second] {
        for expected in &published {
            assert_eq!(&next_change(subscription).await, expected);
        }
    }
}

async fn a_subscriber_that_falls_behind_is_told_it_may_have_missed_changes(fixture: &Feed) {
    let mut slow = fixture.feed.subscribe().await;
    let order = Uuid::new_v4();
    for version in 1..=(BUFFER as u64 * 3) {
        fixture
            .feed
            .publish(&change("orders", order, version))
            .await
            .expect("publish");
    }
    // Let every change reach the subscriber's buffer (Redis delivers in the background).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let heard = bounded("the first item", slow.next()).await;
    assert!(
        matches!(heard, Some(FeedItem::MayHaveMissed)),
        "a lagging subscriber must hear that it missed changes, heard {heard:?}"
    );
    // Then it goes on with what the buffer still holds, the newest change last.
    let mut last = 0;
    while let Ok(Some(item)) = tokio::time::timeout(Duration::from_millis(300), slow.next()).await {
        if let FeedItem::Change(change) = item {
            assert!(change.version > last, "in order");
            last = change.version;
        }
    }
    assert_eq!(last, BUFFER as u64 * 3);
}

/// Publishes changes of a fresh order until `subscription` hears one (for a subscription
/// being re-established in the background); returns it.
async fn publish_until_heard(feed: &dyn ChangeFeed, subscription: &mut ChangeSubscription) {
    bounded("hearing a change again", async {
        let order = Uuid::new_v4();
        for version in 1.. {
            feed.publish(&change("orders", order, version))
                .await
                .expect("publish");
            let heard = tokio::time::timeout(Duration::from_millis(200), async {
                loop {
                    match subscription.next().await {
                        Some(FeedItem::Change(change)) if change.order_id == order => return,
                        Some(_) => continue,
                        None => panic!("the feed ended"),
                    }
                }
            })
            .await;
            if heard.is_ok() {
                return;
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_redis_feed_subscription_is_re_established_and_says_so() {
    let _exclusive = REDIS_SUBSCRIPTIONS.lock().await;
    let config = support::config("order").redis;
    let pipelines: Vec<String> = PIPELINES.iter().map(|p| p.to_string()).collect();
    let feed = RedisChangeFeed::connect(&config, &pipelines, BUFFER).expect("Redis client");
    let channel = format!("{}:changes:orders", config.key_prefix);
    let mut redis = redis::Client::open(config.url.as_str())
        .expect("Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("Redis");
    let before = crate::plugin_announcements::pubsub_clients(&mut redis).await;
    let mut subscription = feed.subscribe().await;
    let ours: Vec<String> = crate::plugin_announcements::pubsub_clients(&mut redis)
        .await
        .difference(&before)
        .cloned()
        .collect();
    assert!(!ours.is_empty(), "the subscription is a pub/sub client");
    for id in &ours {
        let _killed: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(id)
            .query_async(&mut redis)
            .await
            .expect("CLIENT KILL");
    }
    bounded("being told changes may have been missed", async {
        // The first notice comes with the first subscription; the one after the kill follows.
        let mut notices = 0;
        while notices < 2 {
            if let Some(FeedItem::MayHaveMissed) = subscription.next().await {
                notices += 1;
            }
        }
    })
    .await;
    publish_until_heard(&feed, &mut subscription).await;

    // The last subscriber gone, the Redis subscription goes too; the next one makes it again.
    drop(subscription);
    bounded("the Redis subscription released", async {
        loop {
            let (_, subscribers): (String, i64) = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(&channel)
                .query_async(&mut redis)
                .await
                .expect("PUBSUB NUMSUB");
            if subscribers == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    let mut again = feed.subscribe().await;
    publish_until_heard(&feed, &mut again).await;
}
