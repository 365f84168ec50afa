//! The state of the orders on the partitions this worker is processing, kept from one event
//! to the next so that an order's next event is decided without reading the store first.
//!
//! Why a kept state is the stored one. Each partition's events reach one task, in log order,
//! and an order's state is written only by recording its events (the API writes an order once,
//! before its first event, with the oldest write time). So while this worker has been handed
//! every offset of a partition in sequence since it loaded an order, the state it keeps is
//! what the store holds — or what another worker handed the same events (a zombie after a
//! rebalance) reaches with the same writes, since deciding an event again on the same state
//! gives the same decision (the plugin sees the order, the event and clocks and random derived
//! from the event, nothing else the host controls). Any gap or step back in a partition's
//! offsets (a rebalance, a seek, a restart) means its events may have been recorded elsewhere:
//! the partition's states are dropped and read again. So is an order's state after any failed
//! write, and a partition's whole set once it holds `capacity` orders (a bound on memory). The
//! processor does not keep an order that reached a final state of its plugin's state machine.

use std::collections::HashMap;
use std::sync::Mutex;

use uuid::Uuid;

use crate::backend::StoredOrder;

/// Kept order states, per partition of one pipeline's topic.
pub struct OwnedOrders {
    partitions: Mutex<HashMap<i32, PartitionOrders>>,
    capacity: usize,
}

#[derive(Default)]
struct PartitionOrders {
    /// The first offset of the unbroken run of offsets the kept states were built on.
    run_start: i64,
    /// The offset that continues the run.
    next_offset: Option<i64>,
    orders: HashMap<Uuid, StoredOrder>,
}

impl PartitionOrders {
    /// Whether the event at `offset` belongs to the current run (an event still in flight
    /// from before a drop does not: what it leaves behind may be stale).
    fn in_run(&self, offset: i64) -> bool {
        self.run_start <= offset && self.next_offset.is_some_and(|next| offset < next)
    }
}

impl OwnedOrders {
    /// At most `capacity` orders kept per partition; 0 keeps none (every event reads).
    pub fn new(capacity: usize) -> Self {
        OwnedOrders {
            partitions: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// Called for each offset of `partition` as it arrives, in the partition's order (events
    /// of different orders may then be handled concurrently): unless it continues the run,
    /// every state kept for the partition is dropped and a new run begins. Returns whether
    /// states were dropped.
    pub fn begin(&self, partition: i32, offset: i64) -> bool {
        let mut partitions = self.lock();
        let kept = partitions.entry(partition).or_default();
        let continues = kept.next_offset == Some(offset);
        let dropped = !continues && !kept.orders.is_empty();
        if !continues {
            kept.orders.clear();
            kept.run_start = offset;
        }
        kept.next_offset = Some(offset.saturating_add(1));
        dropped
    }

    /// The kept state of `order_id`, if any.
    pub fn get(&self, partition: i32, order_id: Uuid) -> Option<StoredOrder> {
        self.lock()
            .get(&partition)
            .and_then(|kept| kept.orders.get(&order_id))
            .cloned()
    }

    /// Keeps `stored`, the state the event at `offset` left, as the order's current state,
    /// unless the event belongs to a run of offsets that has ended.
    pub fn keep(&self, partition: i32, offset: i64, stored: StoredOrder) {
        if self.capacity == 0 {
            return;
        }
        let mut partitions = self.lock();
        let kept = partitions.entry(partition).or_default();
        if !kept.in_run(offset) {
            return;
        }
        if kept.orders.len() >= self.capacity && !kept.orders.contains_key(&stored.order.id) {
            kept.orders.clear();
        }
        kept.orders.insert(stored.order.id, stored);
    }

    /// Drops the kept state of `order_id` (its next event reads the store).
    pub fn forget(&self, partition: i32, order_id: Uuid) {
        if let Some(kept) = self.lock().get_mut(&partition) {
            kept.orders.remove(&order_id);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, PartitionOrders>> {
        // A panic while holding the lock leaves plain maps behind: still usable.
        self.partitions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::{Order, OrderRequest};

    fn stored(id: Uuid) -> StoredOrder {
        StoredOrder::not_stored(Order::new(id, OrderRequest::default(), 1))
    }

    #[test]
    fn a_state_is_kept_while_the_offsets_follow_each_other() {
        let owned = OwnedOrders::new(10);
        let id = Uuid::new_v4();
        assert!(!owned.begin(0, 5));
        owned.keep(0, 5, stored(id));
        assert!(!owned.begin(0, 6));
        assert!(owned.get(0, id).is_some());
        assert!(owned.get(1, id).is_none(), "kept per partition");
    }

    #[test]
    fn a_gap_or_a_rewind_drops_the_partition() {
        let owned = OwnedOrders::new(10);
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        owned.begin(0, 5);
        owned.keep(0, 5, stored(a));
        owned.begin(1, 7);
        owned.keep(1, 7, stored(b));
        assert!(owned.begin(0, 8), "a gap");
        assert!(owned.get(0, a).is_none());
        assert!(owned.get(1, b).is_some(), "other partitions untouched");
        owned.keep(0, 8, stored(a));
        assert!(owned.begin(0, 3), "a rewind");
        assert!(owned.get(0, a).is_none());
        // An event still in flight from the ended run leaves nothing behind.
        owned.keep(0, 8, stored(a));
        owned.keep(0, 5, stored(a));
        assert!(owned.get(0, a).is_none());
        owned.keep(0, 3, stored(a));
        assert!(owned.get(0, a).is_some());
    }

    #[test]
    fn forgetting_and_the_capacity_bound() {
        let owned = OwnedOrders::new(2);
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        owned.begin(0, 0);
        owned.keep(0, 0, stored(ids[0]));
        owned.forget(0, ids[0]);
        assert!(owned.get(0, ids[0]).is_none());
        owned.keep(0, 0, stored(ids[0]));
        owned.keep(0, 0, stored(ids[1]));
        owned.keep(0, 0, stored(ids[1]));
        assert!(
            owned.get(0, ids[0]).is_some(),
            "replacing an order is not growth"
        );
        owned.keep(0, 0, stored(ids[2]));
        assert!(owned.get(0, ids[0]).is_none(), "full: dropped");
        assert!(owned.get(0, ids[2]).is_some());
        let none = OwnedOrders::new(0);
        none.keep(0, 0, stored(ids[0]));
        assert!(none.get(0, ids[0]).is_none());
    }
}
