//! Write orderpipe plugins in Rust.
//!
//! A plugin is a WebAssembly component that implements the `order-plugin` world of
//! `wit/plugin.wit`: the host hands it an order and an event, the plugin answers with a
//! [`Decision`]. This crate binds that contract once and gives plugin authors plain Rust:
//!
//! - the contract's types ([`Order`], [`Event`], [`Decision`], [`StateMachine`], ...) with
//!   small helpers: [`Decision::transition`], [`Decision::with_attribute`],
//!   [`StateMachine::new`]`(..).edge(..)`, [`Event::data_json`], [`Order::attribute`];
//! - safe wrappers for the host's functions: [`store`], [`cache`], [`log`], [`clock`];
//! - the [`OrderPlugin`] trait and the [`export_plugin!`] macro that turns an implementation
//!   into the component's exports.
//!
//! It never decides anything itself and holds no state between calls: the host starts a fresh
//! instance for every event.
//!
//! # A plugin in one file
//!
//! ```
//! use orderpipe_plugin_sdk::{export_plugin, log, Decision, Event, Order, OrderPlugin, PluginInfo, StateMachine};
//!
//! pub struct Approve;
//!
//! impl OrderPlugin for Approve {
//!     fn describe() -> PluginInfo {
//!         PluginInfo::new("approve", "0.1.0", StateMachine::new("created").edge("created", "approved"))
//!     }
//!
//!     fn decide(order: Order, event: Event) -> Decision {
//!         match (order.status.as_str(), event.kind.as_str()) {
//!             ("created", "created") => {
//!                 log::info(format!("approving {} items", order.items.len()));
//!                 Decision::transition("approved", "every order is welcome")
//!                     .with_attribute("item_count", &order.items.len())
//!             }
//!             (_, kind) => Decision::reject(format!("unknown event type {kind}")),
//!         }
//!     }
//! }
//!
//! export_plugin!(Approve);
//! # fn main() {
//! #     let order = orderpipe_plugin_sdk::testing::order("created");
//! #     let decision = Approve::decide(order, orderpipe_plugin_sdk::testing::event("created", "{}"));
//! #     assert_eq!(decision.transition_to(), Some("approved"));
//! # }
//! ```
//!
//! Build it as a `cdylib`. `cargo xtask plugins` builds the repository's plugins for
//! `wasm32-unknown-unknown`, linked into a component by the toolchain's `wasm-component-ld`
//! (`--config 'target.wasm32-unknown-unknown.linker="wasm-component-ld"'`, and
//! `rustflags = ["-C", "link-arg=--initial-heap=262144"]`): the component imports only the
//! orderpipe interfaces, and a fresh instance costs the host less than one that also imports
//! the WASI interfaces Rust's std links on `wasm32-wasip2`. On that target there is no std I/O
//! (`println!` goes nowhere; use [`log`]) and the SDK supplies the allocator, so a plugin must
//! not set its own `#[global_allocator]`. `cargo build --release --target wasm32-wasip2` works
//! too (it is what `orderpipe plugin build` runs): the host serves those WASI imports from a
//! sandbox that grants nothing. Either way the `.wasm` in `target/<target>/release/` is the
//! component the host loads.
//!
//! # Testing natively
//!
//! Host functions exist only inside the host. On any target other than `wasm32` the
//! wrappers in [`store`], [`cache`], [`log`] and [`clock`] talk to an in-memory fake instead,
//! one per test thread, which [`testing::FakeHost`] seeds and inspects. So a plugin's
//! `decide` runs unchanged under a plain `cargo test`.
//!
//! # Panics
//!
//! A panic in `describe` or `decide` becomes a trap: the host discards the instance and
//! records the event as failed. Before trapping, the SDK sends the panic message to the
//! host's log at level `error`, so the reason is not lost. Expected failures (bad input, a
//! host error) should be a [`Decision::reject`], never a panic.

pub mod cache;
pub mod clock;
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
mod heap;
pub mod log;
pub mod store;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
mod types;

/// The contract's bindings, generated once from `wit/`. Not part of the API: use the
/// re-exports at the crate root.
#[doc(hidden)]
pub mod __bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "order-plugin",
        additional_derives: [PartialEq],
        // The export macro is used from the plugin's crate, through `export_plugin!`.
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "$crate::__bindings",
    });
}

pub use __bindings::orderpipe::plugin::types::{
    Attribute, Decision, Edge, Event, HostError, LineItem, Order, PluginInfo, StateMachine,
    Transition,
};
/// The JSON library the helpers use, so plugins need not pin their own.
pub use serde_json;

/// What a plugin implements: describe itself, and decide on events.
///
/// Every event runs on a fresh instance unless the operator opts the plugin into reuse, so
/// nothing survives in memory from one order to the next: keep what must last in the host's
/// [`store`] or [`cache`].
pub trait OrderPlugin {
    /// The plugin's name, version and state machine. Called once when the host loads it.
    fn describe() -> PluginInfo;

    /// What `event` means for `order`. A [`Decision::transition`] must follow an edge of the
    /// state machine from `order.status`, or the host refuses it.
    fn decide(order: Order, event: Event) -> Decision;
}

/// Every [`OrderPlugin`] is the world's export. The panic hook is installed on entry so a
/// trap always leaves its reason in the host's log.
impl<T: OrderPlugin> __bindings::Guest for T {
    fn describe() -> PluginInfo {
        install_panic_hook();
        T::describe()
    }

    fn decide(order: Order, event: Event) -> Decision {
        install_panic_hook();
        T::decide(order, event)
    }
}

/// Exports an [`OrderPlugin`] implementation as the component's `describe` and `decide`.
/// Call it once, at the top level of the plugin's crate.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ident) => {
        $crate::__bindings::export!($plugin with_types_in $crate::__bindings);
    };
}

/// Sends a panic's message to the host's log before the default hook prints it to stderr
/// (which the host may discard) and the panic aborts, i.e. traps.
fn install_panic_hook() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = info
                .payload_as_str()
                .unwrap_or("(a panic without a message)");
            match info.location() {
                Some(at) => log::error(format!("plugin panicked at {at}: {message}")),
                None => log::error(format!("plugin panicked: {message}")),
            }
            default_hook(info);
        }));
    });
}
