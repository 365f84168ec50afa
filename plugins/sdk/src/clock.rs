//! The host's clock, the only time a plugin gets. Prefer the event's own `at_ms` when the
//! decision is about when the event happened: it stays the same when the event is redelivered.

#[cfg(target_arch = "wasm32")]
use crate::__bindings::orderpipe::plugin::clock as host;
#[cfg(not(target_arch = "wasm32"))]
use crate::testing::fake::clock as host;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    host::now_ms()
}
