//! What a stream sends after its first event: the changes of its order (or of every order
//! of the pipeline) as they come through the feed, each version once and in order, reading
//! the store's history whenever the feed may have lost some (a version jump, a "may have
//! missed" notice, the periodic check). It reads the store, never writes it.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::super::PipelineRoute;
use super::bounds::StreamPermit;
use super::events::{Gone, Ids, Outbox, entry_event, id, lagged_event, status_event};
use crate::backend::OrderStore;
use crate::backend::feed::{Change, ChangeSubscription, FeedItem};
use crate::order::OrderView;

/// History entries read from the store per page while catching up.
const HISTORY_PAGE: usize = 100;
/// How often an order stream checks the store for entries the feed did not bring (a
/// publisher that failed): the longest such an entry waits.
const RESYNC_INTERVAL: Duration = Duration::from_secs(10);
/// Orders a pipeline stream remembers the last version of (to fill gaps from the store);
/// the oldest is forgotten past it.
const MAX_TRACKED_ORDERS: usize = 1_000;
/// Why a stream read the store's history: the feed said changes may have been missed (this
/// stream fell behind, or the feed re-subscribed) ...
const MISSED: &str = "missed";
/// ... a change's version jumped past the next one (a publication was lost) ...
const GAP: &str = "gap";
/// ... or the periodic check ([`RESYNC_INTERVAL`]).
const TICK: &str = "tick";

/// What to do with a change of version `version` when the client has `last`.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Already sent (a redelivery, or read from the store first): skip it.
    Duplicate,
    /// The very next version: send it.
    Next,
    /// Versions in between were missed: read them from the store.
    Gap,
}

fn step(last: u64, version: u64) -> Step {
    if version <= last {
        Step::Duplicate
    } else if version == last + 1 {
        Step::Next
    } else {
        Step::Gap
    }
}

/// Sends the entries of `order_id` after `*last` from the store's history, advancing `*last`.
/// A store outage is logged and left for the next catch-up.
async fn catch_up(
    store: &dyn OrderStore,
    pipeline: &PipelineRoute,
    order_id: Uuid,
    last: &mut u64,
    ids: Ids,
    out: &mut Outbox,
) -> Result<(), Gone> {
    loop {
        let page = match store.history_page(order_id, *last, HISTORY_PAGE).await {
            Ok(page) => page,
            Err(error) => {
                out.metrics.backend_error(&error);
                tracing::warn!(%order_id, %error, "a stream could not read the history; trying again later");
                return Ok(());
            }
        };
        let full = page.len() == HISTORY_PAGE;
        for entry in &page {
            if entry.seq <= *last {
                continue;
            }
            out.send(
                "entry",
                entry_event(pipeline, order_id, entry, id(ids, order_id, entry.seq)),
            )
            .await?;
            *last = entry.seq;
        }
        if !full {
            return Ok(());
        }
    }
}

/// What a stream follows changes with: the store, the feed, the client.
pub(super) struct Follower {
    pub(super) store: Arc<dyn OrderStore>,
    pub(super) pipeline: PipelineRoute,
    pub(super) subscription: ChangeSubscription,
    pub(super) out: Outbox,
}

/// A stream about to run: its follower, its place and its end conditions.
pub(super) struct StreamTask {
    pub(super) follower: Follower,
    pub(super) permit: StreamPermit,
    pub(super) lifetime: Duration,
    pub(super) shutdown: tokio_util::sync::CancellationToken,
}

impl StreamTask {
    /// Runs `body` until it ends, the client goes, the lifetime is over or the host stops;
    /// the stream's place is freed then.
    pub(super) fn spawn<F, Fut>(self, body: F)
    where
        F: FnOnce(Follower) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<(), Gone>> + Send + 'static,
    {
        let StreamTask {
            follower,
            permit,
            lifetime,
            shutdown,
        } = self;
        let closed = follower.out.sender.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = body(follower) => {}
                () = tokio::time::sleep(lifetime) => {}
                () = shutdown.cancelled() => {}
                () = closed.closed() => {}
            }
            drop(permit);
        });
    }
}

/// Follows one order: status (or the missed entries), then its entries as they are recorded.
pub(super) async fn follow_order(
    mut task: Follower,
    order_id: Uuid,
    start: Option<OrderView>,
    mut last: u64,
) -> Result<(), Gone> {
    let store = task.store.clone();
    match start {
        Some(view) => {
            task.out
                .send("status", status_event(&task.pipeline, view))
                .await?
        }
        None => {
            catch_up(
                &*store,
                &task.pipeline,
                order_id,
                &mut last,
                Ids::Version,
                &mut task.out,
            )
            .await?
        }
    }
    let mut resync = tokio::time::interval_at(
        tokio::time::Instant::now() + RESYNC_INTERVAL,
        RESYNC_INTERVAL,
    );
    loop {
        // Why the store must be read now, if it must.
        let cause = tokio::select! {
            item = task.subscription.next() => match item {
                None => return Ok(()),
                Some(FeedItem::MayHaveMissed) => MISSED,
                Some(FeedItem::Change(change))
                    if change.order_id == order_id && change.pipeline == task.pipeline.name =>
                {
                    match step(last, change.version) {
                        Step::Duplicate => continue,
                        Step::Next => {
                            let id = change.version.to_string();
                            let event = entry_event(&task.pipeline, order_id, &change.entry, id);
                            task.out.send("entry", event).await?;
                            last = change.version;
                            continue;
                        }
                        Step::Gap => GAP,
                    }
                }
                Some(FeedItem::Change(_)) => continue,
            },
            _ = resync.tick() => TICK,
        };
        task.out.caught_up(cause);
        catch_up(
            &*store,
            &task.pipeline,
            order_id,
            &mut last,
            Ids::Version,
            &mut task.out,
        )
        .await?;
    }
}

/// The last version a pipeline stream sent of each order it sent, at most
/// [`MAX_TRACKED_ORDERS`] (the oldest forgotten first).
#[derive(Default)]
struct Tracked {
    last: HashMap<Uuid, u64>,
    arrival: VecDeque<Uuid>,
}

impl Tracked {
    fn last(&self, order_id: Uuid) -> Option<u64> {
        self.last.get(&order_id).copied()
    }

    fn sent(&mut self, order_id: Uuid, version: u64) {
        if self.last.insert(order_id, version).is_none() {
            self.arrival.push_back(order_id);
            if self.arrival.len() > MAX_TRACKED_ORDERS
                && let Some(oldest) = self.arrival.pop_front()
            {
                self.last.remove(&oldest);
            }
        }
    }
}

/// Follows every order of the pipeline (of one customer, when asked) from now on.
pub(super) async fn follow_pipeline(
    mut task: Follower,
    customer: Option<String>,
) -> Result<(), Gone> {
    let store = task.store.clone();
    let mut tracked = Tracked::default();
    let wanted = |change: &Change| {
        change.pipeline == task.pipeline.name
            && customer
                .as_deref()
                .is_none_or(|customer| change.customer.as_deref() == Some(customer))
    };
    loop {
        match task.subscription.next().await {
            None => return Ok(()),
            Some(FeedItem::MayHaveMissed) => {
                task.out.caught_up(MISSED);
                let orders: Vec<(Uuid, u64)> =
                    tracked.last.iter().map(|(id, last)| (*id, *last)).collect();
                for (order_id, mut last) in orders {
                    catch_up(
                        &*store,
                        &task.pipeline,
                        order_id,
                        &mut last,
                        Ids::OrderAndVersion,
                        &mut task.out,
                    )
                    .await?;
                    tracked.sent(order_id, last);
                }
                task.out.send("lagged", lagged_event()).await?;
            }
            Some(FeedItem::Change(change)) if wanted(&change) => {
                let order_id = change.order_id;
                let step = tracked
                    .last(order_id)
                    .map_or(Step::Next, |last| step(last, change.version));
                match step {
                    Step::Duplicate => {}
                    Step::Next => {
                        task.out
                            .send(
                                "entry",
                                entry_event(
                                    &task.pipeline,
                                    order_id,
                                    &change.entry,
                                    id(Ids::OrderAndVersion, order_id, change.version),
                                ),
                            )
                            .await?;
                        tracked.sent(order_id, change.version);
                    }
                    Step::Gap => {
                        task.out.caught_up(GAP);
                        let mut last = tracked.last(order_id).unwrap_or_default();
                        catch_up(
                            &*store,
                            &task.pipeline,
                            order_id,
                            &mut last,
                            Ids::OrderAndVersion,
                            &mut task.out,
                        )
                        .await?;
                        tracked.sent(order_id, last);
                    }
                }
            }
            Some(FeedItem::Change(_)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc;

    use super::*;
    use crate::api::stream::events::tests::{entry, framed, pipeline};
    use crate::telemetry::Metrics;

    #[test]
    fn resuming_skips_what_was_sent_and_reads_gaps_from_the_store() {
        assert_eq!(step(3, 2), Step::Duplicate);
        assert_eq!(step(3, 3), Step::Duplicate);
        assert_eq!(step(3, 4), Step::Next);
        assert_eq!(step(3, 6), Step::Gap);
        assert_eq!(step(0, 1), Step::Next);
    }

    #[test]
    fn a_pipeline_stream_remembers_a_bounded_number_of_orders() {
        let mut tracked = Tracked::default();
        let first = Uuid::new_v4();
        tracked.sent(first, 1);
        for _ in 0..MAX_TRACKED_ORDERS {
            tracked.sent(Uuid::new_v4(), 1);
        }
        assert_eq!(tracked.last.len(), MAX_TRACKED_ORDERS);
        assert_eq!(tracked.last(first), None, "the oldest is forgotten");
    }

    #[tokio::test]
    async fn a_stream_behind_the_feed_reads_what_it_missed_from_the_store() {
        use crate::backend::embedded::{EmbeddedStore, InProcessFeed};
        use crate::backend::feed::ChangeFeed as _;
        use crate::order::Order;

        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        let mut order = Order::new(Uuid::new_v4(), Default::default(), 0);
        store.create_order(&order).await.unwrap();
        let start = order.view();
        // A buffer of one change, and a stream that has not read any yet.
        let feed = InProcessFeed::new(1);
        let subscription = feed.subscribe().await;
        let record = async |order: &mut Order| {
            let entry = entry(order.version + 1);
            order.version += 1;
            order.status = entry.to.clone();
            store
                .record_event(order, order.version - 1, &entry)
                .await
                .unwrap();
            feed.publish(&Change::recorded(order, &entry))
                .await
                .unwrap();
        };
        for _ in 0..4 {
            record(&mut order).await;
        }
        let metrics = Arc::new(Metrics::new());
        let (sender, mut receiver) = mpsc::channel(16);
        let follower = Follower {
            store: store.clone(),
            pipeline: pipeline(),
            subscription,
            out: Outbox {
                sender,
                metrics: metrics.clone(),
                first: true,
            },
        };
        let task = tokio::spawn(follow_order(follower, order.id, Some(start), 0));
        let mut ids = Vec::new();
        for _ in 0..5 {
            let event = tokio::time::timeout(Duration::from_secs(5), receiver.recv())
                .await
                .unwrap()
                .unwrap();
            ids.push(framed(event).await.lines().nth(1).unwrap().to_owned());
        }
        // Then live again, through the feed.
        record(&mut order).await;
        let live = tokio::time::timeout(Duration::from_secs(5), receiver.recv())
            .await
            .unwrap()
            .unwrap();
        ids.push(framed(live).await.lines().nth(1).unwrap().to_owned());
        assert_eq!(ids, ["id: 0", "id: 1", "id: 2", "id: 3", "id: 4", "id: 5"]);
        assert_eq!(
            metrics.stream_catch_ups.with_label_values(&[MISSED]).get(),
            1
        );
        assert!(
            tokio::time::timeout(Duration::from_millis(200), receiver.recv())
                .await
                .is_err(),
            "nothing twice"
        );
        task.abort();
    }
}
