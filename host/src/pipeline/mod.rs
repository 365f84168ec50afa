//! The processing half: messages on the event log become recorded events.
//!
//! - [`message`]: what travels on the event log.
//! - [`health`]: whether the worker is paused by a backend outage.
//! - [`processor`]: one event, start to finish: take the order's state, ask the plugin,
//!   record the outcome with the new state, refresh the projections.
//! - [`owned_orders`]: the orders' states kept between their events on a partition, so the
//!   next event is decided without reading the store.
//! - [`changes`]: after an outcome is recorded, tells the change feed (best effort, never
//!   blocking the pipeline), so streams on every host see it.
//! - [`worker`]: the consumer loop: one task per partition, offsets stored only after an
//!   event is fully handled, graceful drain on shutdown.

pub mod changes;
pub mod health;
pub mod message;
pub mod owned_orders;
pub mod processor;
pub mod worker;
