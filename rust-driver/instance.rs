// SPDX-License-Identifier: GPL-2.0
//! An mdev instance's Rust state: its carved resources and a counted
//! reference to its parent for its whole life (see the protocol in
//! parent.rs). Created by the mdev probe, resources returned by the mdev
//! remove, memory freed by the VFIO device's release.

use kernel::{prelude::*, sync::Arc};

use crate::carve::Alloc;
use crate::parent::ParentState;

/// One instance.
pub(crate) struct Instance {
    pub(crate) parent: Arc<ParentState>,
    pub(crate) id: u32,
    pub(crate) alloc: Alloc,
}

impl Instance {
    /// Carves an instance of type `ty` out of `parent`.
    pub(crate) fn create(parent: &Arc<ParentState>, ty: usize) -> Result<KBox<Instance>> {
        // Allocate the memory first: on -ENOMEM nothing was carved.
        let b = KBox::new_uninit(GFP_KERNEL).inspect_err(|_| {
            dev_err!(parent.pdev(), "out of memory for a new instance\n");
        })?;
        let (id, alloc) = parent.carve(ty).inspect_err(|e| {
            dev_err!(
                parent.pdev(),
                "cannot create a type {} instance: {:?}\n",
                ty,
                e
            );
        })?;
        let inst = b.write(Instance {
            parent: parent.clone(),
            id,
            alloc,
        });
        dev_info!(
            parent.pdev(),
            "instance {} created: type {}, VRAM units {}..{}, {} contexts\n",
            id,
            ty,
            alloc.unit,
            alloc.unit + alloc.units - 1,
            alloc.num_contexts()
        );
        Ok(inst)
    }

    /// Gives the resources back (the instance has no users any more).
    pub(crate) fn remove(&self) {
        self.parent.uncarve(self.id, &self.alloc);
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // Idempotent: after `remove` this finds nothing to free; after a
        // failed probe it returns what `create` carved.
        self.parent.uncarve(self.id, &self.alloc);
    }
}
