//! The host's clock, the only time a plugin gets. While deciding an event it reads the
//! event's time (`event.at_ms`, when the host accepted the event), and so do the WASI wall
//! clock and `std::time::SystemTime`: a redelivered or replayed event sees the same time.

#[cfg(target_arch = "wasm32")]
use crate::__bindings::orderpipe::plugin::clock as host;
#[cfg(not(target_arch = "wasm32"))]
use crate::testing::fake::clock as host;

/// Milliseconds since the Unix epoch: the time of the event being decided.
pub fn now_ms() -> u64 {
    host::now_ms()
}
