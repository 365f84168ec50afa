//! The host's row store (Cassandra). Tables and keys are private to the plugin: the host
//! prefixes every address with the plugin's name, so two plugins never see each other's
//! rows. Values are strings; JSON is the usual choice.
//!
//! Every call counts against the plugin's host-call quota for the event and may fail with
//! a [`HostError`], which is a value to handle, never a trap.

use crate::HostError;

#[cfg(target_arch = "wasm32")]
use crate::__bindings::orderpipe::plugin::store as host;
#[cfg(not(target_arch = "wasm32"))]
use crate::testing::fake::store as host;

/// Reads a value; `Ok(None)` when the key was never written or was deleted.
pub fn get(table: &str, key: &str) -> Result<Option<String>, HostError> {
    host::get(table, key)
}

/// Writes a value, replacing any earlier one.
pub fn put(table: &str, key: &str, value: &str) -> Result<(), HostError> {
    host::put(table, key, value)
}

/// Deletes a value; deleting a missing key is not an error.
pub fn delete(table: &str, key: &str) -> Result<(), HostError> {
    host::delete(table, key)
}
