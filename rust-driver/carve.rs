// SPDX-License-Identifier: GPL-2.0
//! Carving the device into instances: the instance types and the allocator
//! of VRAM units and hardware contexts. Pure logic (no hardware, no locks,
//! no allocation): the caller serialises access; kunit/vslice_kunit.rs
//! compiles this file in and checks it against a model.
//!
//! VRAM is cut into `UNITS` equal units. A type takes a power-of-two
//! number of units, naturally aligned (a buddy layout), and contexts in
//! proportion (at least one); each context brings its MSI-X vector.
//! `available(t)` is exact: it is the number of instances of `t` that
//! `alloc(t)` would grant one after the other from the current state.

/// VRAM units per device.
pub(crate) const UNITS: u32 = 8;
/// Most instances at once (each takes at least one unit).
pub(crate) const MAX_INSTANCES: usize = UNITS as usize;
const CTX_WORDS: usize = 4;

/// An instance type.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TypeDesc {
    /// sysfs name (the type is `vslice-<name>`).
    pub(crate) name: &'static str,
    /// Human-readable name.
    pub(crate) pretty: &'static str,
    /// VRAM units (a power of two dividing `UNITS`).
    pub(crate) units: u32,
}

/// The types, smallest first.
pub(crate) const TYPES: [TypeDesc; 4] = [
    TypeDesc {
        name: "eighth",
        pretty: "vslice 1/8",
        units: 1,
    },
    TypeDesc {
        name: "quarter",
        pretty: "vslice 1/4",
        units: 2,
    },
    TypeDesc {
        name: "half",
        pretty: "vslice 1/2",
        units: 4,
    },
    TypeDesc {
        name: "full",
        pretty: "vslice 1/1",
        units: 8,
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
    /// Contexts, as a bitmap.
    pub(crate) ctx: [u64; CTX_WORDS],
}

impl Alloc {
    /// The contexts this instance owns, in order.
    pub(crate) fn contexts(&self) -> impl Iterator<Item = u32> + '_ {
        (0..(CTX_WORDS * 64) as u32).filter(|&c| self.ctx[c as usize / 64] & (1 << (c % 64)) != 0)
    }

    /// Number of contexts.
    pub(crate) fn num_contexts(&self) -> u32 {
        self.ctx.iter().map(|w| w.count_ones()).sum()
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

/// The allocator of one parent.
#[derive(Clone)]
pub(crate) struct Allocator {
    contexts: u32,
    units_used: u32,
    ctx_used: [u64; CTX_WORDS],
    live: [Option<(u32, Alloc)>; MAX_INSTANCES],
    next_id: u32,
}

impl Allocator {
    /// An allocator for a device with `contexts` contexts (at most 256).
    pub(crate) fn new(contexts: u32) -> Self {
        Allocator {
            contexts: contexts.min((CTX_WORDS * 64) as u32),
            units_used: 0,
            ctx_used: [0; CTX_WORDS],
            live: [None; MAX_INSTANCES],
            next_id: 1,
        }
    }

    /// Contexts an instance of type `ty` gets.
    pub(crate) fn contexts_for(&self, ty: usize) -> u32 {
        TYPES
            .get(ty)
            .map_or(0, |t| (self.contexts * t.units / UNITS).max(1))
    }

    fn free_contexts(&self) -> u32 {
        self.contexts - self.ctx_used.iter().map(|w| w.count_ones()).sum::<u32>()
    }

    fn block_free(&self, start: u32, units: u32) -> bool {
        let mask = ((1u32 << units) - 1) << start;
        self.units_used & mask == 0
    }

    /// Instances of type `ty` that could be created one after the other.
    pub(crate) fn available(&self, ty: usize) -> u32 {
        let Some(t) = TYPES.get(ty) else {
            return 0;
        };
        let blocks = (0..UNITS)
            .step_by(t.units as usize)
            .filter(|&s| self.block_free(s, t.units))
            .count() as u32;
        let slots = self.live.iter().filter(|l| l.is_none()).count() as u32;
        blocks
            .min(self.free_contexts() / self.contexts_for(ty))
            .min(slots)
    }

    /// Allocates an instance of type `ty`; returns its id and resources.
    pub(crate) fn alloc(&mut self, ty: usize) -> Result<(u32, Alloc), AllocError> {
        let t = TYPES.get(ty).ok_or(AllocError::BadType)?;
        if self.available(ty) == 0 {
            return Err(AllocError::NoSpace);
        }
        let unit = (0..UNITS)
            .step_by(t.units as usize)
            .find(|&s| self.block_free(s, t.units))
            .ok_or(AllocError::NoSpace)?;
        let slot = self
            .live
            .iter()
            .position(|l| l.is_none())
            .ok_or(AllocError::NoSpace)?;
        let mut ctx = [0u64; CTX_WORDS];
        let mut need = self.contexts_for(ty);
        for c in 0..self.contexts {
            if need == 0 {
                break;
            }
            let (w, b) = (c as usize / 64, c % 64);
            if self.ctx_used[w] & (1 << b) == 0 {
                ctx[w] |= 1 << b;
                need -= 1;
            }
        }
        if need != 0 {
            return Err(AllocError::NoSpace);
        }
        for (used, mine) in self.ctx_used.iter_mut().zip(ctx) {
            *used |= mine;
        }
        self.units_used |= ((1u32 << t.units) - 1) << unit;
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let a = Alloc {
            ty,
            unit,
            units: t.units,
            ctx,
        };
        self.live[slot] = Some((id, a));
        Ok((id, a))
    }

    /// Frees instance `id`'s resources; false if it holds none (already
    /// freed), so that freeing twice is harmless.
    pub(crate) fn free(&mut self, id: u32) -> bool {
        let Some(slot) = self
            .live
            .iter_mut()
            .find(|l| matches!(l, Some((i, _)) if *i == id))
        else {
            return false;
        };
        if let Some((_, a)) = slot.take() {
            self.units_used &= !(((1u32 << a.units) - 1) << a.unit);
            for (used, mine) in self.ctx_used.iter_mut().zip(a.ctx) {
                *used &= !mine;
            }
        }
        true
    }

    /// The live allocations.
    pub(crate) fn live(&self) -> impl Iterator<Item = &(u32, Alloc)> + '_ {
        self.live.iter().flatten()
    }

    /// Number of live instances.
    pub(crate) fn count(&self) -> usize {
        self.live().count()
    }

    /// Bitmap of used VRAM units.
    pub(crate) fn units_used(&self) -> u32 {
        self.units_used
    }
}

/// The parent's lifecycle: Live → Removing → Gone, never backwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lifecycle {
    /// Bound: instances may be created.
    Live,
    /// Unbind started: no new instance, no new parent-level operation.
    Removing,
    /// Unbind finished: the hardware is quiet and unmapped.
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
