/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vslice_shim.h - the one seam between the C shim and the Rust driver.
 *
 * bindgen turns this header into Rust at build time (see Kbuild), so it
 * must stay self-contained: opaque handles, fixed-size integers and plain
 * structs only. vslice_shim_*() are implemented in C and called from Rust;
 * vslice_rs_*() are implemented in Rust and called from C.
 */
#ifndef VSLICE_SHIM_H
#define VSLICE_SHIM_H

#ifdef __BINDGEN__
/* No kernel headers for bindgen: spell the two types out. */
#define u32 unsigned int
#define u64 unsigned long long
#else
#include <linux/types.h>
#endif

struct pci_dev;
/* Rust-owned parent state; C only passes the pointer back to Rust. */
struct vslice_rs_parent;
/* C-owned per-parent state (debugfs, later the rwsem and mdev parent). */
struct vslice_shim_parent;

/* What the parent's debugfs "state" file shows; filled in by Rust. */
struct vslice_parent_info {
	u32 id;
	u32 version;
	u32 contexts;
	u32 vectors;
	u64 vram_size;
	u64 irqs_handled;
	/* 0: never run, 1: passed, 2: failed */
	u32 selftest;
	u32 selftest_irqs;
	u64 selftest_checksum;
};

/* Implemented in C, called from Rust. */
int vslice_shim_init(void);
void vslice_shim_exit(void);
int vslice_shim_parent_add(struct pci_dev *pdev,
			   const struct vslice_rs_parent *rs,
			   struct vslice_shim_parent **out);
void vslice_shim_parent_remove(struct vslice_shim_parent *sp);
int vslice_shim_irqs_enable(struct vslice_shim_parent *sp, u32 nvec);

/* Implemented in Rust, called from C. */
void vslice_rs_parent_info(const struct vslice_rs_parent *rs,
			   struct vslice_parent_info *info);
/* Hard-IRQ context: MSI-X vector @vector fired; non-zero if it was ours. */
int vslice_rs_irq(const struct vslice_rs_parent *rs, u32 vector);
/* Process context (debugfs write): run the device self-test. */
int vslice_rs_selftest(const struct vslice_rs_parent *rs);

#endif /* VSLICE_SHIM_H */
