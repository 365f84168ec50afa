//! How many live order streams may be open: at most `stream.max_per_client` per client
//! address (one more is answered `429`) and `stream.max_total` on this host (`503`). A
//! stream holds a [`StreamPermit`] for as long as it is open; dropping it frees the place.
//! This module counts; it never decides what a stream sends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::super::ApiError;
use crate::config::StreamConfig;
use crate::telemetry::Metrics;

/// The open streams of this host, per client address and in total.
pub struct StreamBounds {
    pub(super) config: StreamConfig,
    open: Mutex<Open>,
    metrics: Arc<Metrics>,
    /// Cancelled when the host stops: every stream ends, so shutdown does not wait for them.
    pub(super) shutdown: CancellationToken,
}

#[derive(Default)]
struct Open {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
}

/// One open stream's place; freed on drop.
pub(super) struct StreamPermit {
    bounds: Arc<StreamBounds>,
    client: Option<IpAddr>,
}

impl StreamBounds {
    pub fn new(config: StreamConfig, metrics: Arc<Metrics>, shutdown: CancellationToken) -> Self {
        Self {
            config,
            open: Mutex::new(Open::default()),
            metrics,
            shutdown,
        }
    }

    fn open(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A place for one more stream of `client` (no address: in-process requests, counted
    /// in the total only), or the refusal.
    pub(super) fn admit(
        self: &Arc<Self>,
        client: Option<IpAddr>,
    ) -> Result<StreamPermit, ApiError> {
        let mut open = self.open();
        if open.total >= self.config.max_total {
            return Err(ApiError::Unavailable(format!(
                "this host serves {} streams already (stream.max_total); retry later or on another host",
                self.config.max_total
            )));
        }
        if let Some(client) = client {
            let count = open.per_client.entry(client).or_insert(0);
            if *count >= self.config.max_per_client {
                return Err(ApiError::TooManyRequests(format!(
                    "{client} has {} streams open already, the most one client may have \
                     (stream.max_per_client); close one first",
                    self.config.max_per_client
                )));
            }
            *count += 1;
        }
        open.total += 1;
        self.metrics.streams_open.inc();
        Ok(StreamPermit {
            bounds: self.clone(),
            client,
        })
    }
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut open = self.bounds.open();
        open.total = open.total.saturating_sub(1);
        if let Some(client) = self.client
            && let Some(count) = open.per_client.get_mut(&client)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.per_client.remove(&client);
            }
        }
        self.bounds.metrics.streams_open.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(max_per_client: usize, max_total: usize) -> Arc<StreamBounds> {
        let config = StreamConfig {
            max_per_client,
            max_total,
            ..StreamConfig::default()
        };
        Arc::new(StreamBounds::new(
            config,
            Arc::new(Metrics::new()),
            CancellationToken::new(),
        ))
    }

    #[test]
    fn a_client_over_its_bound_is_refused_until_one_of_its_streams_ends() {
        let bounds = bounds(2, 10);
        let alice: IpAddr = "10.0.0.1".parse().unwrap();
        let bob: IpAddr = "10.0.0.2".parse().unwrap();
        let first = bounds.admit(Some(alice)).unwrap();
        let _second = bounds.admit(Some(alice)).unwrap();
        assert!(matches!(
            bounds.admit(Some(alice)),
            Err(ApiError::TooManyRequests(_))
        ));
        let _other = bounds
            .admit(Some(bob))
            .expect("another client has its own bound");
        drop(first);
        let _third = bounds.admit(Some(alice)).expect("a place was freed");
    }

    #[test]
    fn the_host_total_is_refused_with_503() {
        let bounds = bounds(5, 2);
        let _a = bounds.admit(Some("10.0.0.1".parse().unwrap())).unwrap();
        let _b = bounds.admit(None).unwrap();
        assert!(matches!(
            bounds.admit(Some("10.0.0.3".parse().unwrap())),
            Err(ApiError::Unavailable(_))
        ));
        assert_eq!(bounds.metrics.streams_open.get(), 2);
    }
}
