// SPDX-License-Identifier: GPL-2.0
//! Carving the device into instances: the instance types and the allocator
//! of VRAM units and hardware contexts. Pure logic (no hardware, no locks,
//! no allocation): the caller serialises access; kunit/vslice_kunit.rs
//! compiles this file in and checks it against a model.
//!
//! The device is cut into `units` equal units, the largest power of two
//! that is at most its context count and `MAX_UNITS`: a unit is 1/units of
//! the VRAM plus `contexts / units` contexts (any remainder stays idle), so
//! VRAM and contexts are carved together. A type takes a power-of-two
//! number of units, naturally aligned (a buddy layout): `unit` is one
//! unit (the most instances: `units` of them), the fractions take 1/8 …
//! all of the device, and a fraction smaller than one unit is not
//! available on that device. Each context brings its MSI-X vector.
//! `available(t)` is exact: it is the number of instances of `t` that
//! `alloc(t)` would grant one after the other from the current state.

/// Most units (and so instances) per device: the width of the unit bitmap.
pub(crate) const MAX_UNITS: u32 = 64;
/// Most instances at once (each takes at least one unit).
pub(crate) const MAX_INSTANCES: usize = MAX_UNITS as usize;

/// An instance type.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TypeDesc {
    /// sysfs name (the type is `vslice-<name>`).
    pub(crate) name: &'static str,
    /// Human-readable name.
    pub(crate) pretty: &'static str,
    /// The share of the device: 1/`div` of it; 0 means one unit.
    pub(crate) div: u32,
}

/// The types. Indices are ABI towards the C shim's type table; `unit`
/// came last, so it is last.
pub(crate) const TYPES: [TypeDesc; 5] = [
    TypeDesc {
        name: "eighth",
        pretty: "vslice 1/8",
        div: 8,
    },
    TypeDesc {
        name: "quarter",
        pretty: "vslice 1/4",
        div: 4,
    },
    TypeDesc {
        name: "half",
        pretty: "vslice 1/2",
        div: 2,
    },
    TypeDesc {
        name: "full",
        pretty: "vslice 1/1",
        div: 1,
    },
    TypeDesc {
        name: "unit",
        pretty: "vslice unit (smallest slice)",
        div: 0,
    },
];

/// What one instance holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Alloc {
    /// Type index in `TYPES`.
    pub(crate) ty: usize,
    /// First VRAM unit.
    pub(crate) unit: u32,
    /// Number of VRAM units.
    pub(crate) units: u32,
    /// Contexts per unit on this device.
    ctx_per_unit: u32,
}

impl Alloc {
    /// The contexts this instance owns, in order (contiguous).
    pub(crate) fn contexts(&self) -> core::ops::Range<u32> {
        self.unit * self.ctx_per_unit..(self.unit + self.units) * self.ctx_per_unit
    }

    /// Number of contexts.
    pub(crate) fn num_contexts(&self) -> u32 {
        self.units * self.ctx_per_unit
    }

    fn mask(&self) -> u64 {
        block_mask(self.unit, self.units)
    }
}

/// Units of a device with `contexts` contexts (see the top of the file).
pub(crate) fn device_units(contexts: u32) -> u32 {
    match contexts.min(MAX_UNITS) {
        0 => 0,
        n => 1 << n.ilog2(),
    }
}

fn block_mask(start: u32, units: u32) -> u64 {
    let ones = if units >= 64 {
        u64::MAX
    } else {
        (1u64 << units) - 1
    };
    ones << start
}

/// Why an allocation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AllocError {
    /// No such type.
    BadType,
    /// Not enough free VRAM or contexts.
    NoSpace,
}

/// The passes that zero `0..len` of a slice with fill jobs of at most
/// `max` bytes, at most `slots` jobs a pass (the scrub ring's size): (offset,
/// length) of each, contiguous, in order. A slice of any size is covered.
pub(crate) fn scrub_passes(len: u64, slots: u64, max: u64) -> impl Iterator<Item = (u64, u64)> {
    let per = slots.max(1).saturating_mul(max.max(1));
    (0..len.div_ceil(per)).map(move |k| (k * per, (len - k * per).min(per)))
}

/// The allocator of one parent.
#[derive(Clone)]
pub(crate) struct Allocator {
    units: u32,
    ctx_per_unit: u32,
    used: u64,
    /// By first unit: the live instance's id and type index.
    live: [Option<(u32, u8)>; MAX_INSTANCES],
    next_id: u32,
}

impl Allocator {
    /// An allocator for a device with `contexts` contexts.
    pub(crate) fn new(contexts: u32) -> Self {
        let units = device_units(contexts);
        Allocator {
            units,
            ctx_per_unit: if units == 0 { 0 } else { contexts / units },
            used: 0,
            live: [None; MAX_INSTANCES],
            next_id: 1,
        }
    }

    /// Units an instance of type `ty` takes on this device (0: not
    /// available here, or no such type).
    pub(crate) fn units_for(&self, ty: usize) -> u32 {
        match TYPES.get(ty) {
            Some(t) if t.div == 0 => self.units.min(1),
            Some(t) => self.units / t.div,
            None => 0,
        }
    }

    /// The smallest type whose instances take at least `units` units.
    pub(crate) fn smallest_with(&self, units: u32) -> Option<usize> {
        (0..TYPES.len())
            .filter(|&t| self.units_for(t) >= units.max(1))
            .min_by_key(|&t| self.units_for(t))
    }

    /// Contexts instances can have: the remainder of `contexts / units`
    /// is never carved.
    pub(crate) fn usable_contexts(&self) -> u32 {
        self.units * self.ctx_per_unit
    }

    /// Contexts an instance of type `ty` gets.
    pub(crate) fn contexts_for(&self, ty: usize) -> u32 {
        self.units_for(ty) * self.ctx_per_unit
    }

    fn block_free(&self, start: u32, units: u32) -> bool {
        self.used & block_mask(start, units) == 0
    }

    fn free_blocks(&self, units: u32) -> impl Iterator<Item = u32> + '_ {
        (0..self.units)
            .step_by(units.max(1) as usize)
            .filter(move |&s| units != 0 && self.block_free(s, units))
    }

    /// Instances of type `ty` that could be created one after the other.
    pub(crate) fn available(&self, ty: usize) -> u32 {
        self.free_blocks(self.units_for(ty)).count() as u32
    }

    /// Allocates an instance of type `ty`; returns its id and resources.
    pub(crate) fn alloc(&mut self, ty: usize) -> Result<(u32, Alloc), AllocError> {
        if ty >= TYPES.len() {
            return Err(AllocError::BadType);
        }
        let units = self.units_for(ty);
        let unit = self.free_blocks(units).next().ok_or(AllocError::NoSpace)?;
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let a = Alloc {
            ty,
            unit,
            units,
            ctx_per_unit: self.ctx_per_unit,
        };
        let slot = self
            .live
            .get_mut(unit as usize)
            .ok_or(AllocError::NoSpace)?;
        *slot = Some((id, ty as u8));
        self.used |= a.mask();
        Ok((id, a))
    }

    /// Frees instance `id`'s resources; false if it holds none (already
    /// freed), so that freeing twice is harmless.
    pub(crate) fn free(&mut self, id: u32) -> bool {
        let Some((_, a)) = self.live().find(|(i, _)| *i == id) else {
            return false;
        };
        if let Some(slot) = self.live.get_mut(a.unit as usize) {
            *slot = None;
        }
        self.used &= !a.mask();
        true
    }

    /// The live allocations: (id, resources), by first unit.
    pub(crate) fn live(&self) -> impl Iterator<Item = (u32, Alloc)> + '_ {
        self.live.iter().enumerate().filter_map(|(unit, l)| {
            let (id, ty) = (*l)?;
            let ty = usize::from(ty);
            Some((
                id,
                Alloc {
                    ty,
                    unit: unit as u32,
                    units: self.units_for(ty),
                    ctx_per_unit: self.ctx_per_unit,
                },
            ))
        })
    }

    /// Number of live instances.
    pub(crate) fn count(&self) -> usize {
        self.live.iter().flatten().count()
    }

    /// Bitmap of used VRAM units.
    pub(crate) fn units_used(&self) -> u64 {
        self.used
    }
}

/// The parent's lifecycle: Live → Removing → Gone, never backwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lifecycle {
    /// Bound: instances may be created.
    Live,
    /// Unbind started: no new instance, no new parent-level operation.
    Removing,
    /// Unbind quiesced the device (every context reset, interrupts
    /// masked); the BARs stay mapped until the driver data drops.
    Gone,
}

impl Lifecycle {
    /// Whether a new lifecycle operation (create, self-test) may start.
    pub(crate) fn may_start(self) -> bool {
        self == Lifecycle::Live
    }

    /// The next state for `to`, or None if that transition is not allowed.
    pub(crate) fn step(self, to: Lifecycle) -> Option<Lifecycle> {
        match (self, to) {
            (Lifecycle::Live, Lifecycle::Removing) | (Lifecycle::Removing, Lifecycle::Gone) => {
                Some(to)
            }
            _ => None,
        }
    }

    /// Name for debugfs.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Lifecycle::Live => "live",
            Lifecycle::Removing => "removing",
            Lifecycle::Gone => "gone",
        }
    }
}
