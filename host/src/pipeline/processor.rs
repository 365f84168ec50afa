//! One event, start to finish.
//!
//! 1. Decode the message (undecodable → dead letter).
//! 2. Take the order's state: kept from its previous event on this partition
//!    ([`OwnedOrders`]); for a new order's `created` event that no worker was handed before
//!    (a first delivery, see `backend::kafka::first_deliveries`), the order the event
//!    describes, unread (nothing can have been recorded for it yet); else loaded (a `created`
//!    event for an order not stored yet describes it).
//! 3. If the event id is already recorded for the order, this is a redelivery: refresh the
//!    projections and stop. Nothing is applied twice.
//! 4. Ask the plugin, with bounded attempts. A plugin that keeps failing yields a `failed`
//!    history entry (status unchanged) and a dead letter; the worker moves on. The plugin's
//!    store writes are held back meanwhile ([`PluginHost::hold_store_writes`]).
//! 5. Record the outcome, the new state, the `order_status` projection and the plugin's store
//!    writes in one write ([`OrderStore::record_next_event_with`]: on Cassandra no consensus
//!    round, idempotent and ordered by write time; a store that cannot take the plugin's
//!    writes along gets them just before; a store that finds the state stale makes us reload
//!    and decide again), and keep the new state for the order's next event.
//! 6. Tell the change feed (in the background; the entry is durable by now), then put the
//!    new view in the Redis cache.
//!
//! A backend outage at any step is retried with jittered exponential backoff, without
//! storing the offset; an outage never produces a dead letter. A backend's refusal that would
//! repeat on every retry (a request too large, an invalid request) is not an outage: the
//! event is recorded as `failed` with the refusal as its reason, dead-lettered, and the
//! partition moves on.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::changes::ChangePublisher;
use super::health::WorkerHealth;
use super::message::{DeadLetter, EventMessage};
use super::owned_orders::OwnedOrders;
use crate::backend::{
    Advance, BackendError, EventLog, OrderStore, PluginWrite, StatusCache, StoredOrder,
};
use crate::config::WorkerConfig;
use crate::order::{CREATED_EVENT, Decision, HistoryEntry, Order, Outcome, now_ms};
use crate::plugin::{ActivePlugin, LoadedPlugin, PluginHost};
use crate::telemetry::Metrics;

/// How often an event is decided again after losing a version race before we back off.
const MAX_VERSION_CONFLICTS: u32 = 5;

/// Where a message came from, for dead letters and logs.
#[derive(Debug, Clone)]
pub struct MessageOrigin {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// No worker was handed this message before ([`crate::backend::Delivery::first_delivery`]).
    pub first_delivery: bool,
}

/// How a message ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// The event was recorded with this outcome.
    Recorded(Outcome),
    /// The event had been recorded before (a redelivery); nothing was applied.
    AlreadyRecorded,
    /// The message could not be processed and went to the dead-letter topic.
    DeadLettered(String),
}

/// The worker was asked to stop while an event was still waiting for a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interrupted;

/// Everything needed to process one pipeline's events.
pub struct EventProcessor {
    /// The pipeline whose topic this processor consumes; new records are tagged with it and
    /// a record of another pipeline is never touched.
    pub pipeline: String,
    pub store: Arc<dyn OrderStore>,
    pub cache: Arc<dyn StatusCache>,
    pub events: Arc<dyn EventLog>,
    /// The plugin version deciding events now; swapped atomically between events.
    pub plugin: Arc<ActivePlugin>,
    pub plugin_host: PluginHost,
    pub metrics: Arc<Metrics>,
    pub config: WorkerConfig,
    pub health: Arc<WorkerHealth>,
    /// Where each recorded change is announced, after it is recorded.
    pub changes: ChangePublisher,
    /// The orders' states kept between their events, per partition.
    pub owned: OwnedOrders,
}

/// What step 4 produced.
struct Verdict {
    outcome: Outcome,
    to: String,
    reason: String,
    attributes: serde_json::Map<String, Value>,
    /// The plugin's store writes, recorded with the event (none when the plugin failed).
    store_writes: Vec<PluginWrite>,
}

impl EventProcessor {
    /// Handles one message to the end, retrying backend errors until they clear or
    /// `shutdown` fires.
    pub async fn handle(
        &self,
        payload: &[u8],
        origin: &MessageOrigin,
        shutdown: &CancellationToken,
    ) -> Result<Handled, Interrupted> {
        let message = match EventMessage::decode(payload) {
            Ok(message) => message,
            Err(reason) => {
                return self
                    .dead_letter_until_sent(None, &reason, "undecodable", payload, origin, shutdown)
                    .await;
            }
        };
        let age_ms = crate::order::now_ms()
            .saturating_sub(message.event.at_ms)
            .max(0);
        self.metrics
            .worker_event_age
            .with_label_values(&[&self.pipeline])
            .observe(age_ms as f64 / 1_000.0);
        let span = tracing::info_span!(
            "event",
            pipeline = %self.pipeline,
            order_id = %message.event.order_id,
            event_id = %message.event.id,
            kind = %message.event.kind,
            partition = origin.partition,
            offset = origin.offset,
        );
        async {
            let mut failures = 0u32;
            // Set once a backend refused this event in a way that will not change on a retry
            // (a request too large, an invalid request): from then on the event is recorded
            // as failed instead of being processed again.
            let mut refused: Option<String> = None;
            let result = loop {
                let attempt = match &refused {
                    // Until a refusal, every attempt after the first follows a backend error.
                    None => self.process(&message, payload, origin, failures == 0).await,
                    Some(detail) => self.record_refusal(&message, payload, origin, detail).await,
                };
                match attempt {
                    Ok(handled) => break Ok(handled),
                    Err(BackendError::Invalid(detail)) if refused.is_none() => {
                        tracing::warn!(%detail, "a backend refused this event; recording it as failed");
                        refused = Some(detail);
                    }
                    Err(BackendError::Invalid(detail)) => {
                        // Even the failure could not be recorded (the stored order itself is
                        // refused): the event goes to the dead letters, the pipeline goes on.
                        tracing::error!(%detail, "a backend refused the failure record too; dead-lettering the event");
                        let reason = format!(
                            "a backend refused this event: {}; and then its failure record: {detail}",
                            refused.as_deref().unwrap_or_default()
                        );
                        break self
                            .dead_letter_until_sent(
                                Some(message.event.order_id),
                                &reason,
                                "refused",
                                payload,
                                origin,
                                shutdown,
                            )
                            .await;
                    }
                    Err(error) => {
                        if failures == 0 {
                            self.health.outage_began(&error.to_string());
                        }
                        self.metrics.backend_error(&error);
                        self.metrics.worker_retries.inc();
                        let delay = self.backoff(failures);
                        failures = failures.saturating_add(1);
                        tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "backend error, will retry");
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = shutdown.cancelled() => break Err(Interrupted),
                        }
                    }
                }
            };
            if failures > 0 {
                self.health.outage_ended();
                if result.is_ok() {
                    tracing::info!(retries = failures, "backend is back; event processed");
                }
            }
            result
        }
        .instrument(span)
        .await
    }

    /// Called for each message in its partition's order before any is handled: continues
    /// (or restarts) the partition's run of offsets for the kept order states, and answers
    /// the order id, whose events are handled one after another (different orders' events
    /// of one partition run concurrently).
    pub fn sequence_key(&self, payload: &[u8], origin: &MessageOrigin) -> Option<u128> {
        if self.owned.begin(origin.partition, origin.offset) {
            tracing::debug!(
                partition = origin.partition,
                offset = origin.offset,
                "offsets not in sequence: the partition's kept orders are read again"
            );
        }
        EventMessage::decode(payload)
            .ok()
            .map(|message| message.event.order_id.as_u128())
    }

    /// Records an event a backend refused (`detail`) as `failed`, status and attributes
    /// unchanged, and sends it to the dead letters: the refusal would repeat on every retry,
    /// so only this event fails and the partition moves on.
    async fn record_refusal(
        &self,
        message: &EventMessage,
        payload: &[u8],
        origin: &MessageOrigin,
        detail: &str,
    ) -> Result<Handled, BackendError> {
        let event = &message.event;
        let reason = format!("a backend refused to record this event: {detail}");
        // Sent once, before the first attempt to record, even if the order changes under us.
        let mut dead_lettered = false;
        // Whatever the refused write did, the order's kept state is not trusted any more.
        self.owned.forget(origin.partition, event.order_id);
        for _ in 0..MAX_VERSION_CONFLICTS {
            let Some(stored) = self.store.load_order(event.order_id).await? else {
                self.dead_letter(Some(event.order_id), &reason, "refused", payload, origin)
                    .await?;
                return Ok(Handled::DeadLettered(reason));
            };
            let order = stored.order.clone();
            if stored.recorded_events.contains(&event.id) {
                self.refresh_projections(&order).await?;
                return Ok(Handled::AlreadyRecorded);
            }
            if !dead_lettered {
                self.dead_letter(Some(order.id), &reason, "refused", payload, origin)
                    .await?;
                dead_lettered = true;
            }
            let plugin = self.plugin.current();
            let mut updated = order.clone();
            updated.version = order.version + 1;
            updated.updated_at_ms = now_ms().max(order.updated_at_ms);
            let entry = HistoryEntry {
                seq: updated.version,
                event_id: event.id,
                event_type: event.kind.clone(),
                outcome: Outcome::Failed,
                from: order.status.clone(),
                to: order.status.clone(),
                reason: reason.clone(),
                plugin: plugin.name.clone(),
                plugin_version: plugin.version.clone(),
                at_ms: updated.updated_at_ms,
            };
            if let Advance::Recorded { .. } = self
                .store
                .record_next_event(&stored, &updated, &entry)
                .await?
            {
                self.metrics
                    .events_processed
                    .with_label_values(&[self.pipeline.as_str(), entry.outcome.as_str()])
                    .inc();
                self.changes.recorded(&updated, &entry);
                self.cache_view(&updated).await?;
                return Ok(Handled::Recorded(Outcome::Failed));
            }
        }
        Err(BackendError::unavailable(
            "order store",
            format!("order kept changing concurrently ({MAX_VERSION_CONFLICTS} version conflicts)"),
        ))
    }

    fn backoff(&self, failures: u32) -> Duration {
        let ceiling = self
            .config
            .initial_backoff_ms
            .saturating_mul(1u64 << failures.min(20))
            .min(self.config.max_backoff_ms)
            .max(1);
        Duration::from_millis(rand::rng().random_range(ceiling / 2..=ceiling))
    }

    /// Whether `message` may be decided without reading its order: a new order's only
    /// `created` event, which no worker was handed before, on the first attempt (after a
    /// failed one, the write may have landed). The order it describes is then the whole state:
    /// nothing was recorded for it, and the API's own write holds the same order.
    fn decides_unread(
        &self,
        message: &EventMessage,
        origin: &MessageOrigin,
        first_attempt: bool,
    ) -> bool {
        self.config.decide_new_orders_unread
            && first_attempt
            && origin.first_delivery
            && message.is_created_published_once()
    }

    async fn process(
        &self,
        message: &EventMessage,
        payload: &[u8],
        origin: &MessageOrigin,
        first_attempt: bool,
    ) -> Result<Handled, BackendError> {
        let event = &message.event;
        let partition = origin.partition;
        for conflicts in 0..MAX_VERSION_CONFLICTS {
            let stored = match self.owned.get(partition, event.order_id) {
                Some(kept) => {
                    self.metrics
                        .worker_order_states
                        .with_label_values(&["kept"])
                        .inc();
                    Some(kept)
                }
                None if conflicts == 0 && self.decides_unread(message, origin, first_attempt) => {
                    self.metrics
                        .worker_order_states
                        .with_label_values(&["new"])
                        .inc();
                    None
                }
                None => {
                    self.metrics
                        .worker_order_states
                        .with_label_values(&["read"])
                        .inc();
                    self.timed("read", self.store.load_order(event.order_id))
                        .await?
                }
            };
            let stored = match stored {
                Some(stored) => stored,
                None => match (&message.order, event.kind == CREATED_EVENT) {
                    // Not stored yet (the API's write may land after this): the event says
                    // what the order is, and recording it stores it.
                    (Some(request), true) => StoredOrder::not_stored(Order::in_pipeline(
                        &self.pipeline,
                        event.order_id,
                        request.clone(),
                        event.at_ms,
                    )),
                    _ => {
                        let reason = format!("order {} does not exist", event.order_id);
                        self.dead_letter(
                            Some(event.order_id),
                            &reason,
                            "unknown_order",
                            payload,
                            origin,
                        )
                        .await?;
                        return Ok(Handled::DeadLettered(reason));
                    }
                },
            };
            let order = stored.order.clone();
            if order.pipeline != self.pipeline {
                let reason = format!(
                    "order {} belongs to pipeline {:?}, not {:?}",
                    order.id, order.pipeline, self.pipeline
                );
                self.dead_letter(Some(order.id), &reason, "wrong_pipeline", payload, origin)
                    .await?;
                return Ok(Handled::DeadLettered(reason));
            }
            if stored.recorded_events.contains(&event.id) {
                self.metrics.events_redelivered.inc();
                tracing::info!(
                    version = order.version,
                    "redelivered event was already recorded; not applying it again"
                );
                self.refresh_projections(&order).await?;
                self.owned.keep(partition, origin.offset, stored);
                return Ok(Handled::AlreadyRecorded);
            }

            // One version decides this event and is named in its history entry, even if a
            // new version is activated meanwhile.
            let plugin = self.plugin.current();
            let verdict = self
                .timed("decide", self.decide(&plugin, &order, message))
                .await?;
            if verdict.outcome == Outcome::Failed {
                // Sent before recording, so a crash in between re-sends rather than loses it.
                self.dead_letter(
                    Some(order.id),
                    &verdict.reason,
                    "plugin_failure",
                    payload,
                    origin,
                )
                .await?;
            }
            let now = now_ms();
            let mut updated = order.clone();
            updated.version = order.version + 1;
            updated.updated_at_ms = now.max(order.updated_at_ms);
            updated.status = verdict.to.clone();
            updated.attributes.extend(verdict.attributes);
            let store_writes = verdict.store_writes;
            let entry = HistoryEntry {
                seq: updated.version,
                event_id: event.id,
                event_type: event.kind.clone(),
                outcome: verdict.outcome,
                from: order.status.clone(),
                to: verdict.to,
                reason: verdict.reason,
                plugin: plugin.name.clone(),
                plugin_version: plugin.version.clone(),
                at_ms: now,
            };
            let recorded = self
                .timed(
                    "record",
                    self.record(&stored, &updated, &entry, &store_writes),
                )
                .await
                .inspect_err(|_| {
                    // Written or not, the kept state is not trusted any more.
                    self.owned.forget(partition, order.id);
                })?;
            match recorded {
                Advance::Recorded { revision } => {
                    self.metrics
                        .events_processed
                        .with_label_values(&[self.pipeline.as_str(), entry.outcome.as_str()])
                        .inc();
                    tracing::info!(
                        outcome = entry.outcome.as_str(),
                        from = %entry.from,
                        to = %entry.to,
                        reason = %entry.reason,
                        version = updated.version,
                        "recorded event"
                    );
                    self.changes.recorded(&updated, &entry);
                    let outcome = entry.outcome;
                    if plugin.state_machine.is_final(&updated.status) {
                        // No event is expected to move it on: memory better spent elsewhere
                        // (a late event reads the store, as for any order not kept).
                        self.owned.forget(partition, order.id);
                    } else {
                        self.owned.keep(
                            partition,
                            origin.offset,
                            stored.advanced(updated.clone(), &entry, revision),
                        );
                    }
                    self.timed("cache", self.cache_view(&updated)).await?;
                    return Ok(Handled::Recorded(outcome));
                }
                Advance::Stale => {
                    self.owned.forget(partition, order.id);
                    tracing::info!(
                        expected = order.version,
                        "order changed under us; deciding again"
                    );
                }
            }
        }
        Err(BackendError::unavailable(
            "order store",
            format!("order kept changing concurrently ({MAX_VERSION_CONFLICTS} version conflicts)"),
        ))
    }

    /// Records the event with the plugin's store writes: in the same request where the store
    /// can, else the writes first (so a crash in between re-applies them on redelivery, never
    /// records the event without them).
    async fn record(
        &self,
        basis: &StoredOrder,
        updated: &Order,
        entry: &HistoryEntry,
        store_writes: &[PluginWrite],
    ) -> Result<Advance, BackendError> {
        if self.store.records_plugin_writes() {
            return self
                .store
                .record_next_event_with(basis, updated, entry, store_writes)
                .await;
        }
        for write in store_writes {
            write.apply(self.plugin_host.store.as_ref()).await?;
        }
        self.store.record_next_event(basis, updated, entry).await
    }

    /// Awaits `step`, timing it into `worker_event_step_seconds{step}`.
    async fn timed<T>(&self, step: &str, work: impl std::future::Future<Output = T>) -> T {
        let started = std::time::Instant::now();
        let result = work.await;
        self.metrics
            .worker_event_step
            .with_label_values(&[step])
            .observe(started.elapsed().as_secs_f64());
        result
    }

    /// Asks the plugin, up to `plugin_attempts` times. A plugin failure after the last
    /// attempt becomes a `failed` verdict; a backend outage seen by a host call becomes an
    /// error so the whole event is retried later.
    async fn decide(
        &self,
        plugin: &LoadedPlugin,
        order: &Order,
        message: &EventMessage,
    ) -> Result<Verdict, BackendError> {
        let labels = [plugin.name.as_str(), plugin.version.as_str()];
        let attempts = self.config.plugin_attempts.max(1);
        let mut last_failure = String::new();
        for attempt in 1..=attempts {
            let trace = plugin
                .decide_traced(order, &message.event, self.plugin_host.clone())
                .await;
            if trace.log_lines_dropped > 0 {
                self.metrics
                    .plugin_log_dropped
                    .with_label_values(&labels)
                    .inc_by(u64::from(trace.log_lines_dropped));
            }
            if !trace.slot_wait.is_zero() {
                self.metrics
                    .plugin_slot_wait
                    .with_label_values(&labels)
                    .observe(trace.slot_wait.as_secs_f64());
            }
            match trace.into_invocation() {
                Ok(invocation) => {
                    self.metrics
                        .plugin_invocations
                        .with_label_values(&[labels[0], labels[1], "ok"])
                        .inc();
                    self.metrics
                        .plugin_duration
                        .with_label_values(&labels)
                        .observe(invocation.duration.as_secs_f64());
                    if !invocation.instantiation.is_zero() {
                        self.metrics
                            .plugin_instantiation
                            .with_label_values(&labels)
                            .observe(invocation.instantiation.as_secs_f64());
                    }
                    self.metrics
                        .plugin_instances
                        .with_label_values(&[labels[0], labels[1], invocation.instance.as_str()])
                        .inc();
                    self.metrics
                        .plugin_fuel
                        .with_label_values(&labels)
                        .observe(invocation.fuel_used as f64);
                    let store_writes = invocation.store_writes;
                    return Ok(match invocation.decision {
                        Decision::Transition {
                            to,
                            reason,
                            attributes,
                        } => Verdict {
                            outcome: Outcome::Transitioned,
                            to,
                            reason,
                            attributes,
                            store_writes,
                        },
                        Decision::NoChange { reason } => Verdict {
                            outcome: Outcome::Unchanged,
                            to: order.status.clone(),
                            reason,
                            attributes: Default::default(),
                            store_writes,
                        },
                        Decision::Reject { reason } => Verdict {
                            outcome: Outcome::Rejected,
                            to: order.status.clone(),
                            reason,
                            attributes: Default::default(),
                            store_writes,
                        },
                    });
                }
                Err(failure) => {
                    if let Some(detail) = failure.backend_unavailable {
                        self.metrics
                            .plugin_invocations
                            .with_label_values(&[labels[0], labels[1], "backend_unavailable"])
                            .inc();
                        return Err(BackendError::unavailable(detail.0, detail.1));
                    }
                    self.metrics
                        .plugin_invocations
                        .with_label_values(&[labels[0], labels[1], "failed"])
                        .inc();
                    tracing::warn!(attempt, attempts, reason = %failure.reason, "plugin failed");
                    last_failure = failure.reason;
                }
            }
        }
        Ok(Verdict {
            outcome: Outcome::Failed,
            to: order.status.clone(),
            reason: format!("plugin failed after {attempts} attempts: {last_failure}"),
            attributes: Default::default(),
            store_writes: Vec::new(),
        })
    }

    /// Both projections at once: each is guarded by the order's version on its own (cell
    /// timestamps, the cache's compare-and-set), so their order does not matter, and the
    /// event is done (its offset stored) only after both.
    async fn refresh_projections(&self, order: &Order) -> Result<(), BackendError> {
        let view = order.view();
        let (status, cached) =
            futures::future::join(self.store.project_status(order), self.cache.put(&view)).await;
        status?;
        cached?;
        Ok(())
    }

    /// The new view into the status cache (the store's projection was written with the
    /// event). Guarded by the order's version: an older view never replaces a newer one.
    async fn cache_view(&self, order: &Order) -> Result<(), BackendError> {
        self.cache.put(&order.view()).await?;
        Ok(())
    }

    async fn dead_letter(
        &self,
        order_id: Option<uuid::Uuid>,
        reason: &str,
        cause: &str,
        payload: &[u8],
        origin: &MessageOrigin,
    ) -> Result<(), BackendError> {
        let letter = DeadLetter {
            reason: reason.to_owned(),
            pipeline: self.pipeline.clone(),
            topic: origin.topic.clone(),
            partition: origin.partition,
            offset: origin.offset,
            payload: String::from_utf8_lossy(payload).into_owned(),
            at_ms: now_ms(),
        };
        let bytes =
            serde_json::to_vec(&letter).map_err(|e| BackendError::Invalid(e.to_string()))?;
        match self.events.publish_dead_letter(order_id, &bytes).await {
            Ok(()) => {}
            Err(BackendError::Invalid(refusal)) => {
                // The log refuses the letter itself (too large): send it without the payload,
                // and if even that is refused, say so in the log rather than stall the
                // partition.
                let slim = DeadLetter {
                    payload: format!("(omitted: the event log refused the full letter: {refusal})"),
                    ..letter
                };
                let bytes =
                    serde_json::to_vec(&slim).map_err(|e| BackendError::Invalid(e.to_string()))?;
                match self.events.publish_dead_letter(order_id, &bytes).await {
                    Ok(()) => {}
                    Err(BackendError::Invalid(refusal)) => {
                        tracing::error!(reason, cause, %refusal, "the event log refused the dead letter; it is only in this log");
                        return Ok(());
                    }
                    Err(outage) => return Err(outage),
                }
            }
            Err(outage) => return Err(outage),
        }
        self.metrics
            .dead_letters
            .with_label_values(&[self.pipeline.as_str(), cause])
            .inc();
        tracing::warn!(reason, cause, "sent message to the dead-letter topic");
        Ok(())
    }

    async fn dead_letter_until_sent(
        &self,
        order_id: Option<uuid::Uuid>,
        reason: &str,
        cause: &str,
        payload: &[u8],
        origin: &MessageOrigin,
        shutdown: &CancellationToken,
    ) -> Result<Handled, Interrupted> {
        let mut failures = 0;
        loop {
            match self
                .dead_letter(order_id, reason, cause, payload, origin)
                .await
            {
                Ok(()) => return Ok(Handled::DeadLettered(reason.to_owned())),
                Err(error) => {
                    self.metrics.backend_error(&error);
                    let delay = self.backoff(failures);
                    failures += 1;
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.cancelled() => return Err(Interrupted),
                    }
                }
            }
        }
    }
}
