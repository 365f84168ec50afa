//! The host's cache (Redis), under the plugin's own key prefix. Good for short-lived
//! facts such as "this payment id was seen"; use [`crate::store`] for records that must last.
//!
//! Every call counts against the plugin's host-call quota for the event and may fail with
//! a [`HostError`], which is a value to handle, never a trap.

use crate::HostError;

#[cfg(target_arch = "wasm32")]
use crate::__bindings::orderpipe::plugin::cache as host;
#[cfg(not(target_arch = "wasm32"))]
use crate::testing::fake::cache as host;

/// Reads a value; `Ok(None)` when it is missing or expired.
pub fn get(key: &str) -> Result<Option<String>, HostError> {
    host::get(key)
}

/// Sets a value; with `ttl_seconds` it expires after that many seconds.
pub fn set(key: &str, value: &str, ttl_seconds: Option<u32>) -> Result<(), HostError> {
    host::set(key, value, ttl_seconds)
}

/// Adds `delta` to an integer value (a missing one counts as 0) and returns the new value.
pub fn incr(key: &str, delta: i64) -> Result<i64, HostError> {
    host::incr(key, delta)
}

/// Deletes a value; deleting a missing key is not an error.
pub fn delete(key: &str) -> Result<(), HostError> {
    host::delete(key)
}
