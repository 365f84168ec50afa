//! The global allocator of a plugin built for `wasm32-unknown-unknown`: the heap the linker
//! leaves in the initial memory (`__heap_base` to `__heap_end`, sized by `--initial-heap`)
//! handed out by a bump pointer, and dlmalloc behind it, on memory it grows.
//!
//! Why: the host starts a fresh instance for every event, and resets its memory afterwards,
//! so a decision's allocations never need to be reused by a later event. A bump pointer
//! costs a few instructions per allocation where dlmalloc's search, bookkeeping and its set-up
//! on the first allocation of every fresh instance were about 40 % of the order plugin's own
//! code, ≈ 1.2 µs of a fresh decision (BENCHMARKS.md, 2026-12-05, night). Memory comes
//! back only when the latest allocation is freed (or grown or shrunk in place); anything else
//! freed stays used until the instance ends.
//!
//! Past the initial heap, allocations go to dlmalloc, which grows the memory (up to the
//! plugin's memory limit) and reuses what is freed there: a decision that allocates more than
//! the initial heap still works, it only pays for growing the memory (a `mprotect` on the host
//! to grow, another with a TLB flush to shrink it when the instance is torn down). A plugin
//! opted into instance reuse (`instance_reuse` above 1) fills the initial heap over its first
//! events and then lives on dlmalloc.
//!
//! Only for this target: `wasm32-wasip2` plugins keep wasi-libc's allocator; native builds
//! (tests) keep the system allocator.

use core::alloc::{GlobalAlloc, Layout};
use core::arch::wasm32;
use core::cell::UnsafeCell;
use core::ptr;

unsafe extern "C" {
    /// The first byte of the linker's initial heap.
    static __heap_base: u8;
    /// One past its last byte.
    static __heap_end: u8;
}

/// A wasm page.
const WASM_PAGE_BYTES: usize = 64 * 1024;

#[global_allocator]
static ALLOCATOR: EventHeap = EventHeap(UnsafeCell::new(Heap {
    start: 0,
    next: 0,
    end: 0,
    latest: None,
    grown: dlmalloc::Dlmalloc::new_with_allocator(GrownMemory),
}));

struct EventHeap(UnsafeCell<Heap>);

// SAFETY: a `wasm32-unknown-unknown` plugin runs on one thread; nothing shares the heap.
unsafe impl Sync for EventHeap {}

struct Heap {
    /// The initial heap, `start..end` (both 0 until the first allocation).
    start: usize,
    end: usize,
    /// Where the next bump allocation may start.
    next: usize,
    /// The start of the latest bump allocation, while it is still live.
    latest: Option<usize>,
    /// Everything that does not fit in the initial heap.
    grown: dlmalloc::Dlmalloc<GrownMemory>,
}

impl EventHeap {
    /// The heap, its bounds read from the linker's symbols on first use.
    #[allow(clippy::mut_from_ref)]
    fn heap(&self) -> &mut Heap {
        // SAFETY: one thread (see `Sync`), and no caller keeps the reference across a call
        // that takes it again.
        let heap = unsafe { &mut *self.0.get() };
        if heap.end == 0 {
            let base = &raw const __heap_base as usize;
            let end = &raw const __heap_end as usize;
            heap.start = base;
            heap.next = base;
            heap.end = end.max(base);
        }
        heap
    }
}

impl Heap {
    /// `layout` from the initial heap, if it still fits.
    fn bump(&mut self, layout: Layout) -> Option<*mut u8> {
        let start = self.next.checked_next_multiple_of(layout.align())?;
        let end = start.checked_add(layout.size())?;
        if end > self.end {
            return None;
        }
        self.next = end;
        self.latest = Some(start);
        Some(start as *mut u8)
    }

    fn in_initial_heap(&self, at: usize) -> bool {
        (self.start..self.end).contains(&at)
    }
}

unsafe impl GlobalAlloc for EventHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let heap = self.heap();
        match heap.bump(layout) {
            Some(at) => at,
            // SAFETY: `layout` is a valid, non-zero-sized layout (this function's contract).
            None => unsafe { heap.grown.malloc(layout.size(), layout.align()) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let heap = self.heap();
        let at = ptr as usize;
        if !heap.in_initial_heap(at) {
            // SAFETY: not from the initial heap, so from `grown`, with this layout.
            return unsafe { heap.grown.free(ptr, layout.size(), layout.align()) };
        }
        if heap.latest == Some(at) {
            heap.next = at;
            heap.latest = None;
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let heap = self.heap();
        let at = ptr as usize;
        if !heap.in_initial_heap(at) {
            // SAFETY: from `grown`, with this layout (`realloc`'s contract); dlmalloc resizes
            // in place when it can.
            return unsafe {
                heap.grown
                    .realloc(ptr, layout.size(), layout.align(), new_size)
            };
        }
        if heap.latest == Some(at)
            && let Some(end) = at.checked_add(new_size)
            && end <= heap.end
        {
            heap.next = end;
            return ptr;
        }
        // SAFETY: `realloc`'s contract: `new_size` rounded to the alignment does not overflow.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: as `alloc`, then the old block is copied and given back as `dealloc`'s
        // contract asks (it is live, with `layout`).
        unsafe {
            let moved = self.alloc(new_layout);
            if !moved.is_null() {
                ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            moved
        }
    }
}

/// What dlmalloc allocates from: pages the memory grows by (never the initial heap, which is
/// the bump pointer's).
struct GrownMemory;

// SAFETY: hands out whole pages the memory just grew by, never twice, never freed.
unsafe impl dlmalloc::Allocator for GrownMemory {
    fn alloc(&self, size: usize) -> (*mut u8, usize, u32) {
        let pages = size.div_ceil(WASM_PAGE_BYTES);
        let previous = wasm32::memory_grow(0, pages);
        if previous == usize::MAX {
            return (ptr::null_mut(), 0, 0);
        }
        (
            (previous * WASM_PAGE_BYTES) as *mut u8,
            pages * WASM_PAGE_BYTES,
            0,
        )
    }

    fn remap(&self, _ptr: *mut u8, _old: usize, _new: usize, _can_move: bool) -> *mut u8 {
        ptr::null_mut()
    }

    fn free_part(&self, _ptr: *mut u8, _old: usize, _new: usize) -> bool {
        false
    }

    fn free(&self, _ptr: *mut u8, _size: usize) -> bool {
        false
    }

    fn can_release_part(&self, _flags: u32) -> bool {
        false
    }

    fn allocates_zeros(&self) -> bool {
        true
    }

    fn page_size(&self) -> usize {
        WASM_PAGE_BYTES
    }
}
