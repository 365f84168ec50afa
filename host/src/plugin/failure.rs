//! Why a plugin could not decide an event, in words for the order's history: a trap, an
//! overrun limit, a refused write, an illegal transition. Also the one failure that is not the
//! plugin's: no instance slot or a backend outage, after which the event is retried.

use wasmtime::Trap;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

use crate::plugin_limits::PluginLimits;

/// The longest reason a plugin may give; longer reasons are cut.
pub(crate) const MAX_REASON_BYTES: usize = 1024;

/// Why a plugin could not decide an event. The reason goes into the order's history.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct PluginFailure {
    pub reason: String,
    /// Set when the failure is not the plugin's and will pass (backend, detail): a host call
    /// met a backend outage, or no instance slot freed up in time. The event is retried
    /// later, not recorded as the plugin's failure.
    pub backend_unavailable: Option<(&'static str, String)>,
}

impl PluginFailure {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            backend_unavailable: None,
        }
    }

    /// A failure that passes: the event is retried.
    pub(crate) fn transient(backend: &'static str, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        Self {
            reason: format!("{backend} unavailable: {detail}"),
            backend_unavailable: Some((backend, detail)),
        }
    }
}

/// Turns a failed call into a readable reason: the limit it overran (`memory_asked`: the
/// memory size the plugin asked for past its cap, if it did), the trap, and the last lines the
/// plugin wrote to stderr.
pub(crate) fn explain(
    limits: &PluginLimits,
    error: &wasmtime::Error,
    memory_asked: Option<usize>,
    stderr: &MemoryOutputPipe,
) -> PluginFailure {
    let mut reason = if let Some(desired) = memory_asked {
        format!(
            "the plugin exceeded its memory limit of {} MiB (asked for {} MiB)",
            limits.memory_mib,
            desired.div_ceil(1024 * 1024)
        )
    } else {
        match error.downcast_ref::<Trap>() {
            Some(Trap::OutOfFuel) => {
                format!("the plugin exceeded its CPU budget of {} fuel", limits.fuel)
            }
            Some(trap) => format!("the plugin trapped: {trap}"),
            None => format!("the plugin failed: {error}"),
        }
    };
    let output = stderr.contents();
    let text = String::from_utf8_lossy(&output);
    let tail: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if !tail.is_empty() {
        let last = tail[tail.len().saturating_sub(3)..].join(" | ");
        reason.push_str(&format!(" (stderr: {})", clamp(&last, MAX_REASON_BYTES)));
    }
    PluginFailure::new(reason)
}

/// `text` cut to at most `max` bytes on a character boundary, with `…` when cut.
pub(crate) fn clamp(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &text[..cut])
}
