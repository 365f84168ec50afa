//! The plugin announcements role: [`PluginAnnouncements`] ("look at plugin X now"), against
//! the in-process implementation and Redis pub/sub. A Redis subscription that drops is
//! re-established and says announcements may have been missed.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use futures::stream::BoxStream;
use orderpipe::backend::announcements::{Announcement, PluginAnnouncements};
use orderpipe::backend::embedded::InProcessAnnouncements;
use orderpipe::backend::redis::announcements::RedisAnnouncements;
use uuid::Uuid;

use crate::{bounded, support};

/// Held by every test here that subscribes through Redis: the test that drops subscriptions
/// cannot tell its own pub/sub clients from those of a test running alongside.
pub(crate) static REDIS_SUBSCRIPTIONS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One backend's announcements, for a registry scope of its own.
pub struct Announcements {
    pub announcements: Arc<dyn PluginAnnouncements>,
    _exclusive: Option<tokio::sync::MutexGuard<'static, ()>>,
}

impl Announcements {
    pub async fn in_process() -> Self {
        Announcements {
            announcements: Arc::new(InProcessAnnouncements::new()),
            _exclusive: None,
        }
    }

    pub async fn redis() -> Self {
        Announcements {
            _exclusive: Some(REDIS_SUBSCRIPTIONS.lock().await),
            announcements: Arc::new(redis_announcements(&unique_scope())),
        }
    }
}

fn unique_scope() -> String {
    format!("test-{}", Uuid::new_v4().simple())
}

fn redis_announcements(scope: &str) -> RedisAnnouncements {
    RedisAnnouncements::connect(&support::config("order").redis, scope).expect("Redis client")
}

fn plugin_name() -> String {
    format!("plugin_{}", Uuid::new_v4().simple())
}

/// Announces `name` until `subscriber` hears it (a Redis subscription is established in the
/// background, so the first announcements may come before it).
async fn announce_until_heard(
    announcements: &dyn PluginAnnouncements,
    subscriber: &mut BoxStream<'static, Announcement>,
    name: &str,
) {
    bounded("hearing an announcement", async {
        loop {
            announcements.announce(name).await.expect("announce");
            let heard = tokio::time::timeout(Duration::from_millis(200), async {
                while let Some(announcement) = subscriber.next().await {
                    if announcement == Announcement::Changed(name.to_owned()) {
                        return true;
                    }
                }
                false
            })
            .await;
            if heard == Ok(true) {
                return;
            }
        }
    })
    .await
}

/// The next change announced for a plugin other than `ignored`, within `WAIT`.
/// [`Announcement::MayHaveMissed`] may come at any time (here: when the test that drops
/// subscriptions runs alongside) and is skipped.
async fn next_change_other_than(
    subscriber: &mut BoxStream<'static, Announcement>,
    ignored: &str,
) -> Announcement {
    bounded("the next announcement", async {
        loop {
            match subscriber.next().await.expect("the subscription goes on") {
                Announcement::Changed(name) if name == ignored => continue,
                Announcement::MayHaveMissed => continue,
                other => return other,
            }
        }
    })
    .await
}

conformance!(Announcements { in_process, redis }:
    every_subscriber_hears_each_announcement,
);

async fn every_subscriber_hears_each_announcement(fixture: &Announcements) {
    let announcements = fixture.announcements.as_ref();
    let (mut first, mut second) = (announcements.subscribe(), announcements.subscribe());
    let warm_up = plugin_name();
    announce_until_heard(announcements, &mut first, &warm_up).await;
    announce_until_heard(announcements, &mut second, &warm_up).await;
    let name = plugin_name();
    announcements.announce(&name).await.expect("announce");
    assert_eq!(
        next_change_other_than(&mut first, &warm_up).await,
        Announcement::Changed(name.clone())
    );
    assert_eq!(
        next_change_other_than(&mut second, &warm_up).await,
        Announcement::Changed(name)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_announcements_stay_in_their_scope() {
    let _exclusive = REDIS_SUBSCRIPTIONS.lock().await;
    let scope = unique_scope();
    let (mine, theirs) = (
        redis_announcements(&scope),
        redis_announcements(&format!("{scope}-other")),
    );
    let mut their_subscriber = theirs.subscribe();
    let mut my_subscriber = mine.subscribe();
    let warm_up = plugin_name();
    announce_until_heard(&theirs, &mut their_subscriber, &warm_up).await;
    announce_until_heard(&mine, &mut my_subscriber, &warm_up).await;
    let name = plugin_name();
    mine.announce(&name).await.expect("announce");
    assert_eq!(
        next_change_other_than(&mut my_subscriber, &warm_up).await,
        Announcement::Changed(name)
    );
    let overheard = tokio::time::timeout(
        Duration::from_millis(300),
        next_change_other_than(&mut their_subscriber, &warm_up),
    )
    .await;
    assert!(overheard.is_err(), "another scope heard {overheard:?}");
}

/// The ids of the Redis clients in pub/sub mode.
pub(crate) async fn pubsub_clients(
    redis: &mut redis::aio::MultiplexedConnection,
) -> HashSet<String> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(redis)
        .await
        .expect("CLIENT LIST");
    list.lines()
        .filter_map(|line| line.split(' ').find_map(|field| field.strip_prefix("id=")))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_redis_subscription_is_re_established() {
    let _exclusive = REDIS_SUBSCRIPTIONS.lock().await;
    let config = support::config("order").redis;
    let mut redis = redis::Client::open(config.url.as_str())
        .expect("Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("Redis");
    let announcements = redis_announcements(&unique_scope());
    let before = pubsub_clients(&mut redis).await;
    let mut subscriber = announcements.subscribe();
    let warm_up = plugin_name();
    announce_until_heard(&announcements, &mut subscriber, &warm_up).await;
    // Only this change's code subscribes, and the other tests here wait, so the new pub/sub
    // clients are this test's.
    let ours: Vec<String> = pubsub_clients(&mut redis)
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
    bounded("being told announcements may have been missed", async {
        loop {
            match subscriber.next().await.expect("the subscription goes on") {
                Announcement::MayHaveMissed => return,
                Announcement::Changed(name) => assert_eq!(name, warm_up),
            }
        }
    })
    .await;
    let after = plugin_name();
    announce_until_heard(&announcements, &mut subscriber, &after).await;
}
