//! The plugin announcements role: a "look now" message telling every host of a registry
//! scope that a plugin's entry in the registry changed (a version was activated, or its
//! limits were set), so hosts switch at once instead of at their next poll.
//!
//! An announcement carries no state: the registry stays the source of truth, and a host that
//! misses a message still converges at its next poll (`plugins.watch_interval_ms`).

use async_trait::async_trait;
use futures::stream::BoxStream;

use super::BackendResult;

/// What a subscriber hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Announcement {
    /// The registry entry of this plugin changed: read it again.
    Changed(String),
    /// Announcements may have been missed (the subscription was re-established, or the
    /// subscriber fell behind): read every plugin again.
    MayHaveMissed,
}

#[async_trait]
pub trait PluginAnnouncements: Send + Sync {
    /// Tells every subscribed host of this registry scope (this one included) that plugin
    /// `name` changed. Best effort: an error only delays the others until their next poll.
    async fn announce(&self, name: &str) -> BackendResult<()>;
    /// Every announcement from now on. The stream keeps itself subscribed (reconnecting
    /// after an outage, then yielding [`Announcement::MayHaveMissed`]) until it is dropped.
    fn subscribe(&self) -> BoxStream<'static, Announcement>;
}
