//! Embedded backends: the three roles (event log, order store, cache) running inside the
//! orderpipe process, with nothing else installed. They implement the same traits as the
//! Kafka, Cassandra and Redis backends and keep the same guarantees, checked by the shared
//! conformance suites in `host/tests/conformance`.
//!
//! - [`log`]: the event log ([`EventLog`](super::EventLog) + [`EventStream`](super::EventStream))
//!   in `<dir>/events.redb`. `publish` returns only once the record is fsynced; records are
//!   ordered per order id (one partition per order, chosen by a stable hash); one consumer
//!   group's progress is persisted, so a restart (even after SIGKILL) resumes from the last
//!   committed offset and redelivers what was not yet committed.
//! - [`store`]: the order store ([`OrderStore`](super::OrderStore) +
//!   [`PluginStore`](super::PluginStore)) in `<dir>/store.redb`. Every write is one ACID
//!   transaction, fsynced before it returns; recording an event is a compare-and-set on the
//!   order's version, like Cassandra's conditional batch. The same file holds the
//!   [`registry`] of plugin versions and limit overrides
//!   ([`PluginRegistry`](super::registry::PluginRegistry)), one per registry scope.
//! - [`announcements`]: plugin announcements
//!   ([`PluginAnnouncements`](super::announcements::PluginAnnouncements)) inside the process,
//!   which is enough because the embedded registry belongs to one process.
//! - [`feed`]: the change feed ([`ChangeFeed`](super::feed::ChangeFeed)) inside the process,
//!   a bounded broadcast: the embedded event log belongs to one process, and so do its
//!   worker and the streams it feeds.
//! - [`cache`]: the status cache ([`StatusCache`](super::StatusCache) +
//!   [`PluginCache`](super::PluginCache)) in process memory, bounded and expiring; lost on
//!   restart, like any cache, and never holding an order view older than one it replaced.
//!
//! Both files may live in the same data directory. Each is locked while open: a second
//! process (or a second handle in this one) opening the same file fails with a clear error
//! instead of corrupting it. Disk work runs off the async runtime (a writer thread for the
//! log, `spawn_blocking` for the store).

pub mod announcements;
pub mod cache;
pub mod feed;
pub mod log;
pub mod registry;
pub mod store;

pub use announcements::InProcessAnnouncements;
pub use cache::EmbeddedCache;
pub use feed::InProcessFeed;
pub use log::{EmbeddedEventLog, EmbeddedEventStream};
pub use registry::EmbeddedRegistry;
pub use store::EmbeddedStore;

use super::BackendError;

/// A redb failure is an outage of the embedded backend (full disk, I/O error): the caller
/// retries as it would for an unreachable server.
fn storage_error(backend: &'static str, error: impl Into<redb::Error>) -> BackendError {
    BackendError::unavailable(backend, error.into())
}

/// Serializes a stored row (JSON).
fn encode(value: &impl serde::Serialize) -> super::BackendResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| BackendError::Invalid(e.to_string()))
}

/// Stamps a new file's `meta` table with `format`, or refuses a file written in another one.
fn check_format(meta: &mut redb::Table<&str, u64>, format: u64) -> anyhow::Result<()> {
    use redb::ReadableTable as _;
    let stored = meta.get("format")?.map(|v| v.value());
    match stored {
        None => {
            meta.insert("format", format)?;
        }
        Some(stored) if stored == format => {}
        Some(other) => anyhow::bail!("it has format {other}; this orderpipe reads {format}"),
    }
    Ok(())
}

/// Opens (or creates) a redb file, saying clearly when another handle holds it.
fn open_database(path: &std::path::Path, cache_bytes: usize) -> anyhow::Result<redb::Database> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("creating data directory {}: {e}", dir.display()))?;
    }
    redb::Builder::new()
        .set_cache_size(cache_bytes)
        .create(path)
        .map_err(|error| match error {
            redb::DatabaseError::DatabaseAlreadyOpen => anyhow::anyhow!(
                "{} is already open (by another orderpipe process, or another handle in this \
                 one); each data directory belongs to one process",
                path.display()
            ),
            other => anyhow::anyhow!("opening {}: {other}", path.display()),
        })
}
