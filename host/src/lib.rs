//! orderpipe: an order pipeline whose business logic lives in sandboxed WebAssembly plugins.
//!
//! The flow of one order: [`api`] accepts it and publishes a `created` event to the event log
//! ([`backend::kafka`]); [`pipeline::worker`] consumes it and [`pipeline::processor`] asks the
//! order plugin ([`plugin`]) what it means, then records the outcome in the order store
//! ([`backend::cassandra`]) and refreshes the status cache ([`backend::redis`]).
//! See ARCHITECTURE.md for the map and the invariants.

pub mod api;
pub mod auth;
pub mod backend;
pub mod cli;
pub mod config;
pub mod order;
pub mod pipeline;
pub mod plugin;
pub mod plugin_limits;
pub mod server;
pub mod telemetry;
