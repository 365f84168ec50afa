//! The plugin runtime: loads WebAssembly components that implement `wit/plugin.wit` and asks
//! them to decide events, inside a sandbox.
//!
//! A plugin is compiled and pre-linked once ([`PluginRuntime::load`]); every decision runs on
//! a fresh instance of its own from the pooling allocator (unless the operator opted the
//! plugin into reuse with its `instance_reuse` limit), with a CPU budget (fuel), a memory cap,
//! a wall-clock deadline, a quota of host calls, a bound on each write, a log budget and
//! bounds on the decision it returns. WASI is linked with an empty, deterministic context: no
//! files, sockets, environment or arguments; clocks read the event's time and random
//! generators are seeded from the event id. Any trap, overrun or illegal transition becomes a
//! [`PluginFailure`]; it never takes the host down.
//!
//! The rooms: [`runtime`] (engine, linker, loading), [`loaded`] (one decision),
//! [`instance`] (a store and the warm instances), [`sandbox`] (the WASI context),
//! [`slots`] (how many instances may exist), [`host_functions`] (store, cache, log, clock),
//! [`decision_bounds`], [`convert`] (WIT ↔ host types), [`failure`] (the reasons), [`limits`]
//! (which limits apply), [`deployment`] (versions, activation, hot swap).
//!
//! `wasmtime` types stay inside this module: callers speak [`crate::order`] types.

mod bindings;
mod convert;
mod decision_bounds;
mod deployment;
mod failure;
mod host_functions;
mod instance;
mod limits;
mod loaded;
mod runtime;
mod sandbox;
mod slots;
mod state_machine;

pub use crate::plugin_limits::{
    LIMIT_NAMES, MAX_FUEL, MAX_HOST_CALLS, MAX_TIMEOUT_MS, PluginLimits,
};
pub use deployment::{ActivePlugin, DeployError, PluginDeployer, Uploaded, sha256_hex};
pub use failure::PluginFailure;
pub use host_functions::HostCall;
pub use limits::{EffectiveLimits, LimitPolicy, LimitSource, LimitSources, LimitsChange};
pub use loaded::{InstanceOrigin, Invocation, LoadedPlugin, PluginHost, Trace};
pub use runtime::{GuestProfiler, PluginRuntime, RuntimeSettings};
pub use state_machine::StateMachine;

#[cfg(test)]
mod tests;
