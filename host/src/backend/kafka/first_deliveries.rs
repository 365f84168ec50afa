//! Which messages a Kafka consumer is handed for the first time by anyone: a message
//! written after this member was assigned its partition, and not handed out before in that
//! assignment. Such a message has never been processed by any worker (nor by this one), so
//! the worker may decide a new order's `created` event on the order the event describes
//! instead of reading the store first (see `pipeline::processor`).
//!
//! How it is known. On each assignment of a partition the consumer asks the broker for the
//! partition's log end (`ListOffsets`), *after* the assignment began: every message any
//! member was ever handed lies below it, since members are only handed what was written.
//! Until the answer is in, nothing counts as a first delivery. Within the assignment, an
//! offset counts only if it is past every offset handed out so far, so a rewind (a seek, a
//! replay) hands out nothing as first. A revocation forgets the partition; an answer from an
//! earlier assignment of the same partition is ignored.
//!
//! A zombie (a member that has lost the partition and not noticed yet) may still process
//! messages this member is handed first: both decide them alike on the same state (see
//! `pipeline::owned_orders`), as for every other event.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Per-partition knowledge of one consumer's current assignments.
#[derive(Default)]
pub struct FirstDeliveries {
    partitions: Mutex<HashMap<i32, Assignment>>,
    assignments: AtomicU64,
}

#[derive(Debug)]
struct Assignment {
    /// Which assignment of this consumer this is (answers for older ones are ignored).
    number: u64,
    /// The partition's log end, read after the assignment began; `None` until then.
    log_end: Option<i64>,
    /// The offset after the highest one handed out in this assignment.
    handed_out_up_to: i64,
}

impl FirstDeliveries {
    /// The partition was assigned to this consumer: nothing of it is a first delivery until
    /// [`FirstDeliveries::log_end_read`] answers for this assignment. Returns the
    /// assignment's number, to pass along with the log end read for it.
    pub fn assigned(&self, partition: i32) -> u64 {
        let number = self.assignments.fetch_add(1, Ordering::Relaxed) + 1;
        self.lock().insert(
            partition,
            Assignment {
                number,
                log_end: None,
                handed_out_up_to: 0,
            },
        );
        number
    }

    /// The partition's log end, read after assignment `number` began.
    pub fn log_end_read(&self, partition: i32, number: u64, log_end: i64) {
        if let Some(assignment) = self.lock().get_mut(&partition)
            && assignment.number == number
        {
            assignment.log_end = Some(log_end);
        }
    }

    /// The partition was revoked: nothing of it is a first delivery until assigned again.
    pub fn revoked(&self, partition: i32) {
        self.lock().remove(&partition);
    }

    /// The assignment is unknown (a rebalance failed): nothing is a first delivery until
    /// the partitions are assigned again.
    pub fn forget_all(&self) {
        self.lock().clear();
    }

    /// Called for each message as it is handed out: whether no member was handed it before.
    pub fn first_delivery(&self, partition: i32, offset: i64) -> bool {
        let mut partitions = self.lock();
        let Some(assignment) = partitions.get_mut(&partition) else {
            return false;
        };
        let beyond_handed_out = offset >= assignment.handed_out_up_to;
        assignment.handed_out_up_to = assignment.handed_out_up_to.max(offset.saturating_add(1));
        beyond_handed_out && assignment.log_end.is_some_and(|end| offset >= end)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Assignment>> {
        // A panic while holding the lock leaves a plain map behind: still usable.
        self.partitions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_messages_written_after_the_assignment_are_first_deliveries() {
        let first = FirstDeliveries::default();
        assert!(!first.first_delivery(0, 10), "not assigned");
        let number = first.assigned(0);
        assert!(!first.first_delivery(0, 10), "log end not read yet");
        first.log_end_read(0, number, 12);
        assert!(
            !first.first_delivery(0, 11),
            "written before the assignment"
        );
        assert!(first.first_delivery(0, 12));
        assert!(first.first_delivery(0, 13));
        assert!(!first.first_delivery(1, 13), "per partition");
    }

    #[test]
    fn a_rewind_hands_out_nothing_as_first() {
        let first = FirstDeliveries::default();
        let number = first.assigned(0);
        first.log_end_read(0, number, 5);
        for offset in 5..8 {
            assert!(first.first_delivery(0, offset));
        }
        assert!(!first.first_delivery(0, 6), "handed out before");
        assert!(!first.first_delivery(0, 7), "handed out before");
        assert!(first.first_delivery(0, 8));
    }

    #[test]
    fn a_new_assignment_starts_over_and_ignores_older_answers() {
        let first = FirstDeliveries::default();
        let old = first.assigned(0);
        first.revoked(0);
        assert!(!first.first_delivery(0, 3));
        let new = first.assigned(0);
        first.log_end_read(0, old, 3);
        assert!(
            !first.first_delivery(0, 4),
            "an answer for an earlier assignment"
        );
        first.log_end_read(0, new, 9);
        assert!(!first.first_delivery(0, 8));
        assert!(first.first_delivery(0, 9));
        // Assigned again without a revocation in between: starts over too.
        let again = first.assigned(0);
        assert!(!first.first_delivery(0, 10));
        first.log_end_read(0, again, 11);
        assert!(first.first_delivery(0, 11));
    }
}
