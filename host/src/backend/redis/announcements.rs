//! Plugin announcements over Redis pub/sub, on one channel per registry scope
//! (`orderpipe:plugin-announcements:<plugins.registry_scope>`), so every host sharing a
//! registry hears every change, whatever its cache key prefix.
//!
//! Each subscription holds a dedicated pub/sub connection, re-established with a growing
//! pause whenever it drops; after a reconnection the subscriber is told it may have missed
//! announcements. Publishing goes through a reconnecting connection of its own.

use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use redis::aio::ConnectionManager;
use tokio::sync::mpsc;

use crate::backend::announcements::{Announcement, PluginAnnouncements};
use crate::backend::{BackendError, BackendResult};
use crate::config::RedisConfig;

const BACKEND: &str = "redis";
/// The first pause before re-subscribing after the connection dropped; doubles up to
/// [`MAX_RESUBSCRIBE_PAUSE`].
const FIRST_RESUBSCRIBE_PAUSE: Duration = Duration::from_millis(100);
const MAX_RESUBSCRIBE_PAUSE: Duration = Duration::from_secs(5);
/// Announcements buffered for a subscriber that is busy switching a plugin.
const BUFFERED_ANNOUNCEMENTS: usize = 64;

/// Announcements for one registry scope over Redis pub/sub.
#[derive(Clone)]
pub struct RedisAnnouncements {
    client: redis::Client,
    publisher: ConnectionManager,
    channel: String,
}

impl RedisAnnouncements {
    /// Configures (lazily: Redis may be down at start-up) the announcements of `scope`.
    pub fn connect(config: &RedisConfig, scope: &str) -> anyhow::Result<Self> {
        let (client, publisher) = super::lazy_connection(config)?;
        Ok(Self {
            client,
            publisher,
            channel: format!("orderpipe:plugin-announcements:{scope}"),
        })
    }

    /// The channel this scope's announcements travel on.
    pub fn channel(&self) -> &str {
        &self.channel
    }
}

#[async_trait]
impl PluginAnnouncements for RedisAnnouncements {
    async fn announce(&self, name: &str) -> BackendResult<()> {
        let mut connection = self.publisher.clone();
        let _receivers: i64 = redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(name)
            .query_async(&mut connection)
            .await
            .map_err(|e| BackendError::unavailable(BACKEND, e))?;
        Ok(())
    }

    fn subscribe(&self) -> BoxStream<'static, Announcement> {
        let (sender, receiver) = mpsc::channel(BUFFERED_ANNOUNCEMENTS);
        tokio::spawn(keep_subscribed(
            self.client.clone(),
            self.channel.clone(),
            sender,
        ));
        futures::stream::unfold(receiver, |mut receiver| async move {
            receiver
                .recv()
                .await
                .map(|announcement| (announcement, receiver))
        })
        .boxed()
    }
}

/// Forwards the channel's messages to `sender` until it is closed, re-subscribing whenever
/// the connection drops.
async fn keep_subscribed(
    client: redis::Client,
    channel: String,
    sender: mpsc::Sender<Announcement>,
) {
    let mut pause = FIRST_RESUBSCRIBE_PAUSE;
    let mut subscribed_before = false;
    loop {
        let subscription = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let pubsub = tokio::select! {
            _ = sender.closed() => return,
            subscription = subscription => subscription,
        };
        match pubsub {
            Ok(mut pubsub) => {
                tracing::info!(%channel, "subscribed to plugin announcements");
                pause = FIRST_RESUBSCRIBE_PAUSE;
                if subscribed_before && sender.try_send(Announcement::MayHaveMissed).is_err() {
                    return;
                }
                subscribed_before = true;
                let mut messages = pubsub.on_message();
                loop {
                    let message = tokio::select! {
                        _ = sender.closed() => return,
                        message = messages.next() => message,
                    };
                    let Some(message) = message else { break };
                    let announcement = match message.get_payload::<String>() {
                        Ok(name) => Announcement::Changed(name),
                        Err(_) => Announcement::MayHaveMissed,
                    };
                    if sender.send(announcement).await.is_err() {
                        return;
                    }
                }
                tracing::warn!(%channel, "the plugin announcement subscription dropped; re-subscribing (hosts poll meanwhile)");
            }
            Err(error) => {
                tracing::warn!(%error, %channel, "cannot subscribe to plugin announcements; retrying (hosts poll meanwhile)");
            }
        }
        tokio::select! {
            _ = sender.closed() => return,
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(MAX_RESUBSCRIBE_PAUSE);
    }
}
