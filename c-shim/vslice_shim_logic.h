/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vslice_shim_logic.h - the shim's small pure helpers, kept apart so that
 * kunit/vslice_shim_kunit.c tests exactly the code the shim runs.
 *
 * VFIO encodes a region index and an offset into one file position (the
 * vfio-pci convention: index in the bits above VSLICE_REGION_SHIFT). The
 * shim decodes every read/write position with these before calling Rust.
 */
#ifndef VSLICE_SHIM_LOGIC_H
#define VSLICE_SHIM_LOGIC_H

#include <linux/types.h>

#define VSLICE_REGION_SHIFT	40
#define VSLICE_REGION_MASK	((1ULL << VSLICE_REGION_SHIFT) - 1)

static inline u64 vslice_region_pos(unsigned int index, u64 offset)
{
	return ((u64)index << VSLICE_REGION_SHIFT) | (offset & VSLICE_REGION_MASK);
}

static inline unsigned int vslice_region_index(loff_t pos)
{
	return (u64)pos >> VSLICE_REGION_SHIFT;
}

static inline u64 vslice_region_offset(loff_t pos)
{
	return (u64)pos & VSLICE_REGION_MASK;
}

#endif /* VSLICE_SHIM_LOGIC_H */
