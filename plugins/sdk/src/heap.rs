//! The global allocator of a plugin built for `wasm32-unknown-unknown`: dlmalloc, as Rust's
//! std uses there, but a release that starts in the heap the linker leaves in the initial
//! memory (`__heap_base` to `__heap_end`) before it grows the memory.
//!
//! Why: the host starts a fresh instance for every event. The dlmalloc inside std (0.2.11)
//! grows the memory on its very first allocation, and a grown memory costs the host a
//! `mprotect` to grow it and another, with a TLB flush, to shrink it back when the instance
//! is torn down: about a quarter of a fresh instance. The plugin build gives the initial
//! memory room for a decision's allocations (`--initial-heap`), so a typical event never
//! grows it; a larger one still can, up to the plugin's memory limit.
//!
//! Only for this target: `wasm32-wasip2` plugins keep wasi-libc's allocator, which already
//! starts in the initial heap; native builds (tests) keep the system allocator.

#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;
