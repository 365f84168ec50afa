//! Whether the worker is riding out a backend outage. The processor reports outages and
//! recoveries; the consumer loop pauses consumption while any event waits on a backend, and
//! `/readyz` and the `worker_paused` metric show it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Shared between the processor, the consumer loop and the API's readiness check.
#[derive(Debug, Default)]
pub struct WorkerHealth {
    /// Events currently waiting for a backend to come back.
    waiting: AtomicUsize,
    last_outage: Mutex<Option<String>>,
}

impl WorkerHealth {
    pub fn new() -> Self {
        Self::default()
    }

    /// An event started waiting on a backend (call once per event).
    pub fn outage_began(&self, reason: &str) {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        *self.last_outage.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason.to_owned());
    }

    /// An event that was waiting on a backend got through (or was abandoned at shutdown).
    pub fn outage_ended(&self) {
        let _ = self
            .waiting
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }

    /// `Some(reason)` while any event waits on a backend.
    pub fn paused_because(&self) -> Option<String> {
        if self.waiting.load(Ordering::SeqCst) == 0 {
            return None;
        }
        self.last_outage
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paused_while_any_event_waits() {
        let health = WorkerHealth::new();
        assert_eq!(health.paused_because(), None);
        health.outage_began("redis unavailable");
        health.outage_began("redis unavailable");
        health.outage_ended();
        assert_eq!(
            health.paused_because().as_deref(),
            Some("redis unavailable")
        );
        health.outage_ended();
        health.outage_ended();
        assert_eq!(health.paused_because(), None);
    }
}
