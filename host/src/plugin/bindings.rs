//! The one place that turns `wit/plugin.wit` into Rust types. Everything else in the plugin
//! runtime imports from here; nothing outside `plugin/` sees these types.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "order-plugin",
    imports: { default: async },
    exports: { default: async },
});

pub use self::orderpipe::plugin::types as wit;
