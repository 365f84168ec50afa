//! Instance slots: how many plugin instances may exist at once on this host (the pooling
//! allocator's capacity). Every instance holds a slot from its creation until it is dropped,
//! idle warm instances included. An invocation that finds every slot taken waits for one,
//! for a bounded time; running out of slots is a reason to wait and retry the event, never
//! the plugin's failure.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The slots of one plugin runtime, shared by every plugin version it loaded.
#[derive(Debug)]
pub(crate) struct InstanceSlots {
    free: Arc<Semaphore>,
    capacity: u32,
    max_wait: Duration,
    /// Invocations that found no free slot and had to wait.
    waits: AtomicU64,
}

/// A held slot; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct Slot {
    _permit: OwnedSemaphorePermit,
}

/// No slot freed up within the wait.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NoFreeSlot {
    pub capacity: u32,
    pub waited: Duration,
}

impl InstanceSlots {
    pub(crate) fn new(capacity: u32, max_wait: Duration) -> Self {
        Self {
            free: Arc::new(Semaphore::new(capacity as usize)),
            capacity,
            max_wait,
            waits: AtomicU64::new(0),
        }
    }

    /// A slot, waiting up to the runtime's bound when none is free. Also says how long it
    /// waited (zero when a slot was free).
    pub(crate) async fn acquire(&self) -> Result<(Slot, Duration), NoFreeSlot> {
        if let Ok(permit) = self.free.clone().try_acquire_owned() {
            return Ok((Slot { _permit: permit }, Duration::ZERO));
        }
        self.waits.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        match tokio::time::timeout(self.max_wait, self.free.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok((Slot { _permit: permit }, started.elapsed())),
            // The semaphore is never closed; treat it like a timeout all the same.
            Ok(Err(_)) | Err(_) => Err(NoFreeSlot {
                capacity: self.capacity,
                waited: started.elapsed(),
            }),
        }
    }

    /// How many invocations have had to wait for a slot so far.
    pub(crate) fn waits(&self) -> u64 {
        self.waits.load(Ordering::Relaxed)
    }

    pub(crate) fn capacity(&self) -> u32 {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_caller_waits_for_a_freed_slot_and_gives_up_after_the_bound() {
        let slots = Arc::new(InstanceSlots::new(1, Duration::from_millis(300)));
        let (held, waited) = slots.acquire().await.unwrap();
        assert_eq!(waited, Duration::ZERO);
        let waiter = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire().await.map(|(_, waited)| waited) }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(held);
        let waited = waiter.await.unwrap().unwrap();
        assert!(waited >= Duration::from_millis(40), "{waited:?}");
        assert_eq!(slots.waits(), 1);

        let (_held, _) = slots.acquire().await.unwrap();
        let refused = slots.acquire().await.unwrap_err();
        assert_eq!(refused.capacity, 1);
        assert!(refused.waited >= Duration::from_millis(300));
    }
}
