//! The plugin runtime: loads WebAssembly components that implement `wit/plugin.wit` and asks
//! them to decide events, inside a sandbox.
//!
//! A plugin is compiled and pre-linked once ([`PluginRuntime::load`]); every decision runs on
//! an instance of its own from the pooling allocator (a warm one that has only ever returned
//! normally, up to `plugins.instance_reuse` events, else a fresh one), with a CPU budget (fuel), a memory cap, a
//! wall-clock deadline and a quota of host calls. WASI is linked with an empty context: no
//! files, no sockets, no environment, no arguments; stdout and stderr go to small in-memory
//! pipes whose tail is kept as part of a failure's reason. Any trap, overrun or illegal
//! transition becomes a [`PluginFailure`]; it never takes the host down.
//!
//! `wasmtime` types stay inside this module: callers speak [`crate::order`] types.

mod bindings;
mod deployment;
mod host_functions;
mod limits;
mod runtime;
mod state_machine;

pub use deployment::{ActivePlugin, DeployError, PluginDeployer, Uploaded, sha256_hex};
pub use host_functions::HostCall;
pub use limits::{
    EffectiveLimits, LimitPolicy, LimitSource, LimitSources, LimitsChange, MAX_FUEL,
    MAX_HOST_CALLS, MAX_TIMEOUT_MS,
};
pub use runtime::{
    Invocation, LoadedPlugin, PluginFailure, PluginHost, PluginLimits, PluginRuntime, Trace,
};
pub use state_machine::StateMachine;

#[cfg(test)]
mod tests;
