//! Plugin announcements inside one process: the embedded registry belongs to one process
//! (one per data directory), so the admin API and the plugin watcher that must hear about a
//! change live side by side.

use async_trait::async_trait;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use tokio::sync::broadcast;

use crate::backend::BackendResult;
use crate::backend::announcements::{Announcement, PluginAnnouncements};

/// Announcements a subscriber may fall behind by before it is told it missed some.
const BUFFERED_ANNOUNCEMENTS: usize = 64;

/// In-process announcements: a broadcast channel.
#[derive(Clone)]
pub struct InProcessAnnouncements {
    sender: broadcast::Sender<String>,
}

impl InProcessAnnouncements {
    pub fn new() -> Self {
        Self {
            sender: broadcast::channel(BUFFERED_ANNOUNCEMENTS).0,
        }
    }
}

impl Default for InProcessAnnouncements {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl PluginAnnouncements for InProcessAnnouncements {
    async fn announce(&self, name: &str) -> BackendResult<()> {
        // No subscriber (an API-only process) is not an error: nobody needs to hear it.
        let _ = self.sender.send(name.to_owned());
        Ok(())
    }

    fn subscribe(&self) -> BoxStream<'static, Announcement> {
        futures::stream::unfold(self.sender.subscribe(), |mut receiver| async move {
            let announcement = match receiver.recv().await {
                Ok(name) => Announcement::Changed(name),
                Err(broadcast::error::RecvError::Lagged(_)) => Announcement::MayHaveMissed,
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            Some((announcement, receiver))
        })
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_subscriber_hears_what_is_announced_after_it_subscribed() {
        let announcements = InProcessAnnouncements::new();
        announcements.announce("before").await.unwrap();
        let mut heard = announcements.subscribe();
        announcements.announce("order").await.unwrap();
        assert_eq!(
            heard.next().await,
            Some(Announcement::Changed("order".into()))
        );
    }
}
