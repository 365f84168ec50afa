//! Conformance suites: what every implementation of a backend role must do, written once as a
//! generic test body over the role's traits and run against each implementation, so the
//! embedded backends and the real servers cannot drift apart.
//!
//! Each body is instantiated by [`conformance!`] as `<body>::embedded` and `<body>::<server>`
//! (`kafka`, `cassandra`, `redis`; the servers come from `cargo xtask servers up`). Every
//! real-server test gets names of its own (topic, consumer group, key prefix, plugin names),
//! so tests run in parallel without seeing each other. Every wait is bounded.

#[path = "../support/mod.rs"]
mod support;

use std::future::Future;
use std::time::Duration;

/// The longest any single wait in these suites may take (a Kafka group join included).
pub const WAIT: Duration = Duration::from_secs(60);

/// Awaits `future`, failing the test with `what` if it takes longer than [`WAIT`].
pub async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {WAIT:?}"))
}

/// `conformance!(Fixture { embedded, kafka }: body_a, body_b);` declares, for each body, a
/// module named after it with one test per implementation: `Fixture::embedded()` (async)
/// builds the fixture and `body_a(&fixture)` runs against it.
macro_rules! conformance {
    ($fixture:ident $backends:tt : $($body:ident),+ $(,)?) => {
        $( conformance!(@body $fixture $backends $body); )+
    };
    (@body $fixture:ident { $($backend:ident),+ } $body:ident) => {
        mod $body {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $backend() {
                    let fixture = super::$fixture::$backend().await;
                    super::$body(&fixture).await;
                }
            )+
        }
    };
}

mod cassandra_batching;
mod change_feed;
mod event_log;
mod order_store;
mod plugin_announcements;
mod plugin_data;
mod plugin_registry;
mod redis_near_cache;
mod refusals;
mod status_cache;
