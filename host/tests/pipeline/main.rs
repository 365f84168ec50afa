//! End-to-end tests of the whole pipeline against the real Kafka, Cassandra and Redis
//! servers (`cargo xtask servers up`). One test binary, so it is linked once.

#[path = "../support/mod.rs"]
mod support;

mod bad_input;
mod concurrent_workers;
mod idempotency;
mod modes;
mod pipelines;
mod plugin_bounds;
mod redelivery;
mod sandbox;
mod workflow;
