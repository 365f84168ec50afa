//! orderpipe patch (see vendor/README.md): a store's instances returned to the
//! state they had right after instantiation, instead of instantiated again.
//!
//! A fresh instance per call isolates one call from the next; for a guest
//! whose start-up is costly (componentize-py links fourteen core instances and
//! builds thousands of function references for every new instance) the same
//! isolation is cheaper kept: the instances' memories reset in place (as the
//! pooling allocator resets a slot when an instance is dropped), and their
//! globals, tables, passive segments, component flags and handle tables
//! written back. Only instances whose memories hold exactly their images after
//! instantiation qualify (a start-up that writes memory is refused), so a
//! reset returns them to that state.

use super::{Store, StoreOpaque};
use crate::prelude::*;
use crate::runtime::vm::{HostAlignedByteCount, InstanceCheckpoint, PageMap};
use std::sync::OnceLock;

/// The state [`Store::checkpoint_instances`] took.
pub(super) struct StoreCheckpoint {
    instances: Vec<InstanceCheckpoint>,
    #[cfg(feature = "component-model")]
    components: Vec<Vec<crate::runtime::vm::VMGlobalDefinition>>,
}

/// The process's `/proc/self/pagemap`, where the kernel has `PAGEMAP_SCAN`.
fn pagemap() -> Option<&'static PageMap> {
    static PAGEMAP: OnceLock<Option<PageMap>> = OnceLock::new();
    PAGEMAP.get_or_init(PageMap::new).as_ref()
}

impl<T> Store<T> {
    /// orderpipe patch (see vendor/README.md): remembers the state of every
    /// instance in this store, to be returned to by
    /// [`Store::restore_instances`]. Call it right after instantiating, before
    /// the first call. False (and nothing remembered) when a state cannot be
    /// restored exactly: no `PAGEMAP_SCAN` in the kernel, a memory outside the
    /// pooling allocator or written by the start-up, GC references, a live
    /// component handle.
    pub fn checkpoint_instances(&mut self) -> bool {
        self.inner.checkpoint_instances()
    }

    /// orderpipe patch (see vendor/README.md): returns every instance in this
    /// store to the state [`Store::checkpoint_instances`] remembered. Written
    /// memory pages up to `keep_resident_bytes` per memory are copied back
    /// from the image, the rest given back to the kernel. False when there is
    /// no checkpoint or the instances cannot be returned to it (a memory or
    /// table grew, a segment was dropped, a handle is live, a trap): the
    /// store must then be dropped and never called again.
    pub fn restore_instances(&mut self, keep_resident_bytes: usize) -> bool {
        self.inner.restore_instances(keep_resident_bytes)
    }
}

impl StoreOpaque {
    fn checkpoint_instances(&mut self) -> bool {
        self.instances_checkpoint = None;
        let Some(pagemap) = pagemap() else {
            return false;
        };
        #[cfg(feature = "component-model")]
        let Some(components) = self.store_data_mut().components.checkpoint_instances() else {
            return false;
        };
        let mut instances = Vec::new();
        for (_, instance) in self.instances.iter_mut() {
            // Dummy instances too (the store's default caller): whatever one holds is
            // checkpointed like a real instance's, or refused.
            let Some(checkpoint) = instance.handle.get_mut().checkpoint(Some(pagemap)) else {
                return false;
            };
            instances.push(checkpoint);
        }
        self.instances_checkpoint = Some(Box::new(StoreCheckpoint {
            instances,
            #[cfg(feature = "component-model")]
            components,
        }));
        true
    }

    fn restore_instances(&mut self, keep_resident_bytes: usize) -> bool {
        let Some(checkpoint) = self.instances_checkpoint.take() else {
            return false;
        };
        let keep_resident = HostAlignedByteCount::new_rounded_up(keep_resident_bytes)
            .unwrap_or(HostAlignedByteCount::ZERO);
        if self.instances.len() != checkpoint.instances.len() {
            return false;
        }
        #[cfg(feature = "component-model")]
        if !self
            .store_data_mut()
            .components
            .restore_instances(&checkpoint.components)
        {
            return false;
        }
        for ((_, instance), state) in self.instances.iter_mut().zip(&checkpoint.instances) {
            if !instance
                .handle
                .get_mut()
                .restore(state, pagemap(), keep_resident)
            {
                return false;
            }
        }
        self.instances_checkpoint = Some(checkpoint);
        true
    }
}
