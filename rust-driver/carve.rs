// SPDX-License-Identifier: GPL-2.0
//! Carving the device into instances: the instance types and the allocator
//! of VRAM units and hardware contexts. Pure logic (no hardware, no locks,
//! no allocation): the caller serialises access; kunit/vslice_kunit.rs
//! compiles this file in and checks it against a model.
//!
//! The VRAM is cut into `units` equal units, the smallest power of two that
//! is at least the context count (at most `MAX_UNITS`, which covers every
//! context the register map has); unit `u` comes with context `u` when the
//! device has one, so units past the last context are VRAM only. A type
//! takes a power-of-two number of units, naturally aligned (a buddy
//! layout): `unit` is one unit (the most instances: one per context), the
//! fractions take 1/8 … all of the VRAM, and a fraction smaller than one
//! unit is not available on that device. A block is offered only if it
//! starts at a unit with a context; it gets the contexts of its units, so
//! on a device whose context count is not a power of two the last block of
//! a fraction has fewer contexts than the others (never none). Each
//! context brings its MSI-X vector.
//!
//! Released units are dirty until the device has zeroed them (scrub.rs):
//! a dirty unit can be allocated (its create waits for the scrub), so
//! `available(t)` stays exact: the number of instances of `t` that
//! `alloc(t)` would grant one after the other from the current state.
//! Only a unit whose scrub failed (`bad`) is withheld until a scrub of it
//! succeeds.

/// Most units (and so instances) per device: the width of the unit sets,
/// at least `regs::MAX_CONTEXTS`.
pub(crate) const MAX_UNITS: u32 = 256;
/// Most instances at once (each takes at least one unit).
pub(crate) const MAX_INSTANCES: usize = MAX_UNITS as usize;

const WORDS: usize = MAX_UNITS as usize / 64;

/// A set of units.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Units(pub(crate) [u64; WORDS]);

impl Units {
    /// Units `start .. start + n` (clipped to `MAX_UNITS`).
    pub(crate) fn range(start: u32, n: u32) -> Self {
        let mut s = Units::default();
        for u in start..start.saturating_add(n).min(MAX_UNITS) {
            s.0[u as usize / 64] |= 1 << (u % 64);
        }
        s
    }

    /// Number of units in the set.
    pub(crate) fn count(&self) -> u32 {
        self.0.iter().map(|w| w.count_ones()).sum()
    }

    /// Whether the two sets share a unit.
    pub(crate) fn meets(&self, o: &Units) -> bool {
        self.0.iter().zip(o.0.iter()).any(|(a, b)| a & b != 0)
    }

    fn add(&mut self, o: &Units) {
        self.0.iter_mut().zip(o.0.iter()).for_each(|(a, b)| *a |= b);
    }

    fn remove(&mut self, o: &Units) {
        self.0
            .iter_mut()
            .zip(o.0.iter())
            .for_each(|(a, b)| *a &= !b);
    }
}

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
    /// One past the last context (the device's last, or the block's).
    ctx_end: u32,
}

impl Alloc {
    /// A block of `units` units at `unit` on a device of `contexts`
    /// contexts.
    pub(crate) fn block(ty: usize, unit: u32, units: u32, contexts: u32) -> Self {
        Alloc {
            ty,
            unit,
            units,
            ctx_end: unit.saturating_add(units).min(contexts).max(unit),
        }
    }

    /// The contexts this instance owns, in order (contiguous).
    pub(crate) fn contexts(&self) -> core::ops::Range<u32> {
        self.unit..self.ctx_end
    }

    /// Number of contexts.
    pub(crate) fn num_contexts(&self) -> u32 {
        self.ctx_end - self.unit
    }

    /// The units it holds.
    pub(crate) fn set(&self) -> Units {
        Units::range(self.unit, self.units)
    }

    /// This block and `next` as one, if `next` starts where this one ends:
    /// its units and contexts are both blocks' (scrubs of adjacent blocks
    /// go as one).
    pub(crate) fn merged(&self, next: &Alloc) -> Option<Alloc> {
        (self.unit + self.units == next.unit).then_some(Alloc {
            ty: self.ty,
            unit: self.unit,
            units: self.units + next.units,
            ctx_end: if next.ctx_end > next.unit {
                next.ctx_end
            } else {
                self.ctx_end
            },
        })
    }
}

/// Units of a device with `contexts` contexts (see the top of the file).
pub(crate) fn device_units(contexts: u32) -> u32 {
    match contexts.min(MAX_UNITS) {
        0 => 0,
        n => n.next_power_of_two(),
    }
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
    contexts: u32,
    used: Units,
    /// Not zeroed since their last tenant (or since the device was bound).
    dirty: Units,
    /// Their last scrub failed: not offered until one succeeds.
    bad: Units,
    /// By first unit: the live instance's id (0: none) and type index
    /// (16 bits hold an id for every instance there can be: the allocator
    /// is copied whole by the KUnit model).
    ids: [u16; MAX_INSTANCES],
    tys: [u8; MAX_INSTANCES],
    next_id: u16,
}

impl Allocator {
    /// An allocator for a device with `contexts` contexts; every unit is
    /// dirty (a bound device's VRAM holds whatever it held).
    pub(crate) fn new(contexts: u32) -> Self {
        let units = device_units(contexts);
        Allocator {
            units,
            contexts: contexts.min(units),
            used: Units::default(),
            dirty: Units::range(0, units),
            bad: Units::default(),
            ids: [0; MAX_INSTANCES],
            tys: [0; MAX_INSTANCES],
            next_id: 1,
        }
    }

    /// Number of VRAM units.
    pub(crate) fn units(&self) -> u32 {
        self.units
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

    /// Contexts instances can have: every context up to `MAX_UNITS`.
    pub(crate) fn usable_contexts(&self) -> u32 {
        self.contexts
    }

    /// The most contexts an instance of type `ty` gets (the first block's).
    pub(crate) fn contexts_for(&self, ty: usize) -> u32 {
        self.units_for(ty).min(self.contexts)
    }

    fn block_free(&self, b: &Alloc) -> bool {
        let s = b.set();
        !s.meets(&self.used) && !s.meets(&self.bad)
    }

    /// The blocks of type `ty` that are offered: aligned, starting at a
    /// unit with a context.
    fn blocks(&self, ty: usize) -> impl Iterator<Item = Alloc> + '_ {
        let n = self.units_for(ty);
        (0..self.contexts)
            .step_by(n.max(1) as usize)
            .filter(move |_| n != 0)
            .map(move |s| Alloc::block(ty, s, n, self.contexts))
    }

    /// Instances of type `ty` that could be created one after the other.
    pub(crate) fn available(&self, ty: usize) -> u32 {
        self.blocks(ty).filter(|b| self.block_free(b)).count() as u32
    }

    /// Allocates an instance of type `ty`, a block with no dirty unit if
    /// there is one; returns its id and resources. The caller waits for
    /// the block's dirty units (`is_dirty`) before anyone uses it.
    pub(crate) fn alloc(&mut self, ty: usize) -> Result<(u32, Alloc), AllocError> {
        if ty >= TYPES.len() {
            return Err(AllocError::BadType);
        }
        let a = {
            let mut free = self.blocks(ty).filter(|b| self.block_free(b));
            let first = free.next().ok_or(AllocError::NoSpace)?;
            if first.set().meets(&self.dirty) {
                free.find(|b| !b.set().meets(&self.dirty)).unwrap_or(first)
            } else {
                first
            }
        };
        // The next id no live instance has (there are fewer than 2^16).
        let mut id = self.next_id;
        while id == 0 || self.ids.contains(&id) {
            id = id.wrapping_add(1);
        }
        self.next_id = id.wrapping_add(1);
        let slot = a.unit as usize;
        *self.ids.get_mut(slot).ok_or(AllocError::NoSpace)? = id;
        *self.tys.get_mut(slot).ok_or(AllocError::NoSpace)? = ty as u8;
        self.used.add(&a.set());
        Ok((u32::from(id), a))
    }

    /// Frees instance `id`'s resources, which become dirty if it `ran`
    /// (else they stay as they were); returns them, or None if it holds
    /// none (already freed), so that freeing twice is harmless.
    pub(crate) fn free(&mut self, id: u32, ran: bool) -> Option<Alloc> {
        let (_, a) = self.live().find(|(i, _)| *i == id && id != 0)?;
        if let Some(slot) = self.ids.get_mut(a.unit as usize) {
            *slot = 0;
        }
        self.used.remove(&a.set());
        if ran {
            self.dirty.add(&a.set());
        }
        Some(a)
    }

    /// Whether any of the units of `a` is dirty.
    pub(crate) fn is_dirty(&self, a: &Alloc) -> bool {
        a.set().meets(&self.dirty)
    }

    /// Whether any of the units of `a` is bad.
    pub(crate) fn is_bad(&self, a: &Alloc) -> bool {
        a.set().meets(&self.bad)
    }

    /// The device zeroed `s` (`ok`), or failed to: then the units stay
    /// dirty and are withheld until a later scrub of them succeeds.
    pub(crate) fn scrubbed(&mut self, s: &Units, ok: bool) {
        if ok {
            self.dirty.remove(s);
            self.bad.remove(s);
        } else {
            let mut b = *s;
            b.0.iter_mut()
                .zip(self.dirty.0.iter())
                .for_each(|(x, d)| *x &= d);
            self.bad.add(&b);
        }
    }

    /// Dirty units.
    pub(crate) fn dirty(&self) -> Units {
        self.dirty
    }

    /// Bad units.
    pub(crate) fn bad(&self) -> Units {
        self.bad
    }

    /// The live allocations: (id, resources), by first unit.
    pub(crate) fn live(&self) -> impl Iterator<Item = (u32, Alloc)> + '_ {
        self.ids
            .iter()
            .zip(self.tys.iter())
            .enumerate()
            .filter(|(_, (&id, _))| id != 0)
            .map(|(unit, (&id, &ty))| {
                let ty = usize::from(ty);
                (
                    u32::from(id),
                    Alloc::block(ty, unit as u32, self.units_for(ty), self.contexts),
                )
            })
    }

    /// Number of live instances.
    pub(crate) fn count(&self) -> usize {
        self.ids.iter().filter(|&&id| id != 0).count()
    }

    /// Used VRAM units.
    pub(crate) fn units_used(&self) -> Units {
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
