//! Log lines into the host's log, which tags them with the plugin and the order. Plugins
//! have no stdout worth writing to: the host gives them none.

#[cfg(target_arch = "wasm32")]
use crate::__bindings::orderpipe::plugin::log as host;
#[cfg(not(target_arch = "wasm32"))]
use crate::testing::fake::log as host;

pub use crate::__bindings::orderpipe::plugin::log::Level;

/// Logs `message` at `level`.
pub fn log(level: Level, message: impl AsRef<str>) {
    host::log(level, message.as_ref());
}

pub fn debug(message: impl AsRef<str>) {
    log(Level::Debug, message);
}

pub fn info(message: impl AsRef<str>) {
    log(Level::Info, message);
}

pub fn warn(message: impl AsRef<str>) {
    log(Level::Warn, message);
}

pub fn error(message: impl AsRef<str>) {
    log(Level::Error, message);
}
