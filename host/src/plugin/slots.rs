//! Instance slots: how many plugin instances may exist at once on this host (the pooling
//! allocator's capacity). Every instance holds its share of the pool from its creation until
//! it is dropped, idle warm instances included. An invocation that finds too little of the
//! pool free waits, for a bounded time; running out of room is a reason to wait and retry the
//! event, never the plugin's failure.
//!
//! One slot is room for one component instance and [`CORE_INSTANCES_PER_SLOT`] core
//! instances (with their memories and tables). A Rust guest needs 3 core instances, a
//! TypeScript one (jco's QuickJS backend) 8, a componentize-py one 14: an instance of a component that needs
//! more than a slot's share takes the share it needs ([`SlotShare`]), so the pool can never
//! run out underneath an invocation that holds its share.
//!
//! Idle instances (an instance kept for the next event, [`IdleInstances`]) hold their share
//! too, but give it up to anyone who needs it: an invocation that finds the pool full first
//! drops idle instances, and none is kept idle while an invocation waits.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Core instances per slot: the pooling allocator holds `slots` component instances and
/// `slots × CORE_INSTANCES_PER_SLOT` core instances, `slots × MEMORIES_PER_SLOT` memories and
/// `slots × CORE_INSTANCES_PER_SLOT` tables.
pub(crate) const CORE_INSTANCES_PER_SLOT: u32 = 8;
/// Linear memories per slot (a guest has one; two leave room for an adapter's own).
pub(crate) const MEMORIES_PER_SLOT: u32 = 2;

/// What one instance of a component takes from the pool, in core-instance units: at least a
/// whole slot (its component instance), more when the component needs more core instances,
/// memories or tables than a slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SlotShare {
    units: u32,
}

impl SlotShare {
    /// One slot: a component that fits in a slot's share.
    #[cfg(test)]
    pub(crate) const ONE_SLOT: Self = Self {
        units: CORE_INSTANCES_PER_SLOT,
    };

    /// The share of a component that creates `core_instances` core instances, `memories`
    /// linear memories and `tables` tables per instance.
    pub(crate) fn of(core_instances: u32, memories: u32, tables: u32) -> Self {
        let per_memory = CORE_INSTANCES_PER_SLOT / MEMORIES_PER_SLOT;
        Self {
            units: CORE_INSTANCES_PER_SLOT
                .max(core_instances)
                .max(memories.saturating_mul(per_memory))
                .max(tables),
        }
    }

    /// In slots, rounded up (for messages).
    pub(crate) fn slots(self) -> u32 {
        self.units.div_ceil(CORE_INSTANCES_PER_SLOT)
    }
}

/// The slots of one plugin runtime, shared by every plugin version it loaded.
#[derive(Debug)]
pub(crate) struct InstanceSlots {
    /// Free core-instance units.
    free: Arc<Semaphore>,
    capacity: u32,
    max_wait: Duration,
    /// Invocations that found no free slot and had to wait.
    waits: AtomicU64,
    /// Invocations waiting for room right now (see [`InstanceSlots::may_keep_idle`]).
    waiting: AtomicUsize,
    /// Where idle instances are kept, to be dropped when an invocation needs their room.
    idle: Mutex<Vec<Weak<dyn IdleInstances>>>,
}

/// Somewhere idle instances are kept (a plugin version's warm instances).
pub(crate) trait IdleInstances: Send + Sync {
    /// Drops one idle instance, giving its share back to the pool; false if none is idle.
    fn drop_one(&self) -> bool;
}

impl std::fmt::Debug for dyn IdleInstances {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdleInstances")
    }
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
            free: Arc::new(Semaphore::new(
                capacity as usize * CORE_INSTANCES_PER_SLOT as usize,
            )),
            capacity,
            max_wait,
            waits: AtomicU64::new(0),
            waiting: AtomicUsize::new(0),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Registers a place idle instances are kept, so that an invocation short of room can
    /// drop them. Places that no longer exist are forgotten here.
    pub(crate) fn register_idle(&self, place: Weak<dyn IdleInstances>) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.retain(|place| place.strong_count() > 0);
        idle.push(place);
    }

    /// Whether an instance may be kept idle now: not while an invocation waits for room.
    /// Asked by the keeper under the lock of its idle instances, which
    /// [`InstanceSlots::acquire`] takes (to drop one) only after counting itself as waiting:
    /// so an instance kept while someone waits is either dropped by the waiter or never kept.
    pub(crate) fn may_keep_idle(&self) -> bool {
        self.waiting.load(Ordering::SeqCst) == 0
    }

    /// Drops one idle instance anywhere; false if none is idle.
    fn drop_idle_one(&self) -> bool {
        let places: Vec<_> = self
            .idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        places.iter().any(|place| place.drop_one())
    }

    /// Whether an instance taking `share` can ever fit in the pool.
    pub(crate) fn fits(&self, share: SlotShare) -> bool {
        share.units <= self.capacity.saturating_mul(CORE_INSTANCES_PER_SLOT)
    }

    /// Room for one instance taking `share`, waiting up to the runtime's bound when there is
    /// too little free. Also says how long it waited (zero when there was room). A share
    /// larger than the whole pool (see [`InstanceSlots::fits`]) is never granted.
    pub(crate) async fn acquire(&self, share: SlotShare) -> Result<(Slot, Duration), NoFreeSlot> {
        if let Ok(permit) = self.free.clone().try_acquire_many_owned(share.units) {
            return Ok((Slot { _permit: permit }, Duration::ZERO));
        }
        let started = Instant::now();
        // Counted as waiting before looking at the idle instances: one kept after this sees
        // the count and is dropped instead (see `may_keep_idle`).
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.waiting);
        while self.fits(share) && self.drop_idle_one() {
            if let Ok(permit) = self.free.clone().try_acquire_many_owned(share.units) {
                return Ok((Slot { _permit: permit }, started.elapsed()));
            }
        }
        self.waits.fetch_add(1, Ordering::Relaxed);
        let wait = if self.fits(share) {
            self.max_wait
        } else {
            Duration::ZERO
        };
        let free = self.free.clone();
        match tokio::time::timeout(wait, free.acquire_many_owned(share.units)).await {
            Ok(Ok(permit)) => Ok((Slot { _permit: permit }, started.elapsed())),
            // The semaphore is never closed; treat it like a timeout all the same.
            Ok(Err(_)) | Err(_) => Err(NoFreeSlot {
                capacity: self.capacity,
                waited: started.elapsed(),
            }),
        }
    }

    /// How many invocations have had to wait for a slot so far (not counting those that found
    /// room by dropping idle instances).
    pub(crate) fn waits(&self) -> u64 {
        self.waits.load(Ordering::Relaxed)
    }

    pub(crate) fn capacity(&self) -> u32 {
        self.capacity
    }
}

/// Counts an invocation as waiting for room for as long as it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slots held idle, as a plugin version's idle instances hold theirs.
    #[derive(Default)]
    struct Parked(Mutex<Vec<Slot>>);

    impl IdleInstances for Parked {
        fn drop_one(&self) -> bool {
            self.0.lock().unwrap().pop().is_some()
        }
    }

    #[tokio::test]
    async fn idle_instances_give_their_room_to_a_caller_and_none_is_kept_while_one_waits() {
        let slots = Arc::new(InstanceSlots::new(1, Duration::from_millis(2_000)));
        let one = SlotShare::ONE_SLOT;
        let parked = Arc::new(Parked::default());
        let place: Arc<dyn IdleInstances> = parked.clone();
        slots.register_idle(Arc::downgrade(&place));

        // The pool's one slot is held idle: a caller takes its room at once.
        let (idle, _) = slots.acquire(one).await.unwrap();
        parked.0.lock().unwrap().push(idle);
        let (held, _) = slots.acquire(one).await.unwrap();
        assert!(
            parked.0.lock().unwrap().is_empty(),
            "the idle slot was dropped"
        );
        assert_eq!(slots.waits(), 0, "nobody had to wait for it");
        assert!(slots.may_keep_idle());

        // While a caller waits for room, nothing may be kept idle.
        let waiter = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire(one).await.map(|_| ()) }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!slots.may_keep_idle());
        drop(held);
        waiter
            .await
            .unwrap()
            .expect("the waiter got the freed slot");
        assert!(slots.may_keep_idle());
        assert_eq!(slots.waits(), 1);
    }

    #[tokio::test]
    async fn a_caller_waits_for_a_freed_slot_and_gives_up_after_the_bound() {
        let slots = Arc::new(InstanceSlots::new(1, Duration::from_millis(300)));
        let one = SlotShare::ONE_SLOT;
        let (held, waited) = slots.acquire(one).await.unwrap();
        assert_eq!(waited, Duration::ZERO);
        let waiter = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire(one).await.map(|(_, waited)| waited) }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(held);
        let waited = waiter.await.unwrap().unwrap();
        assert!(waited >= Duration::from_millis(40), "{waited:?}");
        assert_eq!(slots.waits(), 1);

        let (_held, _) = slots.acquire(one).await.unwrap();
        let refused = slots.acquire(one).await.unwrap_err();
        assert_eq!(refused.capacity, 1);
        assert!(refused.waited >= Duration::from_millis(300));
    }

    #[test]
    fn a_component_takes_a_slot_or_the_share_it_needs() {
        // A Rust guest (3 core instances, 1 memory, 2 tables) and a 4-instance one.
        assert_eq!(SlotShare::of(3, 1, 2), SlotShare::ONE_SLOT);
        assert_eq!(SlotShare::of(4, 1, 2), SlotShare::ONE_SLOT);
        // A componentize-py guest: 14 core instances, 1.75 slots (2 in messages, rounded up).
        assert_eq!(SlotShare::of(14, 1, 2).slots(), 2);
        // Memories and tables count too.
        assert_eq!(SlotShare::of(1, 3, 1).slots(), 2);
        assert_eq!(SlotShare::of(1, 1, 17).slots(), 3);
    }

    #[tokio::test]
    async fn larger_shares_leave_room_for_fewer_instances() {
        let slots = InstanceSlots::new(4, Duration::from_millis(50));
        let python = SlotShare::of(14, 1, 2);
        let (_a, _) = slots.acquire(python).await.unwrap();
        let (_b, _) = slots.acquire(python).await.unwrap();
        // 4 slots hold two such instances; a third, or even a one-slot instance, waits.
        assert!(slots.acquire(python).await.is_err());
        assert!(slots.acquire(SlotShare::ONE_SLOT).await.is_err());
        // A share larger than the whole pool is refused at once rather than waited for.
        let huge = SlotShare::of(8 * 4 + 1, 1, 1);
        assert!(!slots.fits(huge));
        let refused = slots.acquire(huge).await.unwrap_err();
        assert!(
            refused.waited < Duration::from_millis(50),
            "{:?}",
            refused.waited
        );
    }
}
