//! The change feed over Redis pub/sub: one channel per pipeline,
//! `<redis.key_prefix>:changes:<pipeline>`, so every host sharing the cache hears every
//! change of the pipelines it serves, whichever host's worker recorded it.
//!
//! One channel per pipeline rather than per order: a host then holds one pub/sub connection
//! whatever the number of streams, subscribing once (not once per client) before a stream
//! reads the store, and fans the changes out in process through a bounded broadcast; the
//! price is that each host hears every change (a few hundred bytes each) and filters.
//!
//! The subscription is made when the first stream asks for it and dropped when the last
//! subscriber is gone; it is re-established with a growing pause whenever it drops, and
//! every (re-)subscription tells the subscribers they may have missed changes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt as _;
use redis::aio::ConnectionManager;
use tokio::sync::{broadcast, watch};

use crate::backend::feed::{Change, ChangeFeed, ChangeSubscription, FeedItem};
use crate::backend::{BackendError, BackendResult};
use crate::config::RedisConfig;

const BACKEND: &str = "redis";
/// The first pause before re-subscribing after the connection dropped; doubles up to
/// [`MAX_RESUBSCRIBE_PAUSE`].
const FIRST_RESUBSCRIBE_PAUSE: Duration = Duration::from_millis(100);
const MAX_RESUBSCRIBE_PAUSE: Duration = Duration::from_secs(5);
/// How often a quiet subscription checks whether anyone still listens.
const IDLE_CHECK: Duration = Duration::from_secs(5);

/// The change feed of a set of pipelines over Redis pub/sub.
#[derive(Clone)]
pub struct RedisChangeFeed {
    client: redis::Client,
    publisher: ConnectionManager,
    prefix: String,
    shared: Arc<Shared>,
}

/// What the feed and its subscription task share.
struct Shared {
    /// The channels of the pipelines this host serves.
    channels: Vec<String>,
    sender: broadcast::Sender<FeedItem>,
    /// Whether the Redis subscription is in place now.
    subscribed: watch::Sender<bool>,
    /// Whether the subscription task runs; read and written under the lock so that a new
    /// subscriber and a task leaving for lack of subscribers never miss each other.
    listening: Mutex<bool>,
    /// How long `subscribe` waits for the Redis subscription to be confirmed.
    confirm_timeout: Duration,
}

impl RedisChangeFeed {
    /// Configures (lazily: Redis may be down at start-up) the feed of `pipelines`, buffering
    /// `buffer` changes per subscriber.
    pub fn connect(
        config: &RedisConfig,
        pipelines: &[String],
        buffer: usize,
    ) -> anyhow::Result<Self> {
        let (client, publisher) = super::lazy_connection(config)?;
        let timeout = Duration::from_millis(config.timeout_ms);
        let prefix = config.key_prefix.clone();
        let channels = pipelines
            .iter()
            .map(|pipeline| channel(&prefix, pipeline))
            .collect();
        Ok(Self {
            client,
            publisher,
            prefix,
            shared: Arc::new(Shared {
                channels,
                sender: broadcast::channel(buffer.max(1)).0,
                subscribed: watch::channel(false).0,
                listening: Mutex::new(false),
                confirm_timeout: timeout,
            }),
        })
    }

    /// Starts the subscription task unless it runs.
    fn ensure_listening(&self) {
        let mut listening = self
            .shared
            .listening
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !*listening {
            *listening = true;
            tokio::spawn(listen(self.client.clone(), self.shared.clone()));
        }
    }
}

/// The channel of one pipeline's changes.
fn channel(prefix: &str, pipeline: &str) -> String {
    format!("{prefix}:changes:{pipeline}")
}

#[async_trait]
impl ChangeFeed for RedisChangeFeed {
    async fn publish(&self, change: &Change) -> BackendResult<()> {
        let payload =
            serde_json::to_string(change).map_err(|e| BackendError::Invalid(e.to_string()))?;
        let mut connection = self.publisher.clone();
        let _receivers: i64 = redis::cmd("PUBLISH")
            .arg(channel(&self.prefix, &change.pipeline))
            .arg(payload)
            .query_async(&mut connection)
            .await
            .map_err(|e| BackendError::unavailable(BACKEND, e))?;
        Ok(())
    }

    async fn subscribe(&self) -> ChangeSubscription {
        // The receiver exists before the task can leave for lack of subscribers.
        let subscription = ChangeSubscription::new(self.shared.sender.subscribe());
        self.ensure_listening();
        let mut subscribed = self.shared.subscribed.subscribe();
        if tokio::time::timeout(
            self.shared.confirm_timeout,
            subscribed.wait_for(|subscribed| *subscribed),
        )
        .await
        .is_err()
        {
            tracing::warn!(
                "the change feed subscription is not in place yet; streams read the store meanwhile"
            );
        }
        subscription
    }
}

impl Shared {
    /// Whether the task should stop: nobody listens. Clears `listening` under the lock, so a
    /// subscriber arriving now starts a new task.
    fn leave_if_unheard(&self) -> bool {
        let mut listening = self
            .listening
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if self.sender.receiver_count() == 0 {
            *listening = false;
            self.subscribed.send_replace(false);
            true
        } else {
            false
        }
    }
}

/// Forwards the channels' messages to the subscribers while there are any, re-subscribing
/// whenever the connection drops.
async fn listen(client: redis::Client, shared: Arc<Shared>) {
    let mut pause = FIRST_RESUBSCRIBE_PAUSE;
    loop {
        let subscription = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&shared.channels).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        match subscription.await {
            Ok(mut pubsub) => {
                tracing::debug!(channels = ?shared.channels, "subscribed to the change feed");
                pause = FIRST_RESUBSCRIBE_PAUSE;
                shared.subscribed.send_replace(true);
                // Whoever subscribed before this moment may have missed changes.
                let _ = shared.sender.send(FeedItem::MayHaveMissed);
                let mut messages = pubsub.on_message();
                loop {
                    let message = match tokio::time::timeout(IDLE_CHECK, messages.next()).await {
                        Ok(Some(message)) => message,
                        Ok(None) => break,
                        Err(_) => {
                            if shared.leave_if_unheard() {
                                return;
                            }
                            continue;
                        }
                    };
                    let change = message
                        .get_payload::<String>()
                        .ok()
                        .and_then(|text| serde_json::from_str::<Change>(&text).ok());
                    let item = match change {
                        Some(change) => FeedItem::Change(Arc::new(change)),
                        None => {
                            tracing::warn!("an unreadable change feed message; subscribers resync");
                            FeedItem::MayHaveMissed
                        }
                    };
                    if shared.sender.send(item).is_err() && shared.leave_if_unheard() {
                        return;
                    }
                }
                shared.subscribed.send_replace(false);
                tracing::warn!(
                    "the change feed subscription dropped; re-subscribing (streams read the store meanwhile)"
                );
            }
            Err(error) => {
                tracing::warn!(%error, "cannot subscribe to the change feed; retrying (streams read the store meanwhile)");
            }
        }
        if shared.leave_if_unheard() {
            return;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_RESUBSCRIBE_PAUSE);
    }
}
