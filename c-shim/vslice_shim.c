// SPDX-License-Identifier: GPL-2.0
/*
 * vslice_shim.c - the C half of vslice: kernel structures that Rust has no
 * bindings for, and nothing else. Every decision is a call into Rust
 * through vslice_shim.h.
 *
 * Owns: the debugfs root (module lifetime) and one struct
 * vslice_shim_parent per bound PCI device (created at the end of probe,
 * removed at the start of unbind, both called from Rust).
 *
 * Locking: none of its own yet. debugfs_remove() waits for readers of the
 * state file, so the Rust parent state that a reader uses outlives them.
 */

#include <linux/debugfs.h>
#include <linux/pci.h>
#include <linux/seq_file.h>
#include <linux/slab.h>

#include "vslice_shim.h"

struct vslice_shim_parent {
	struct pci_dev *pdev;
	const struct vslice_rs_parent *rs;
	struct dentry *dir;
};

static struct dentry *vslice_debugfs_root;

/* debugfs read of <root>/<bdf>/state; called with no lock held. */
static int vslice_state_show(struct seq_file *s, void *unused)
{
	struct vslice_shim_parent *sp = s->private;
	struct vslice_parent_info info = {};

	vslice_rs_parent_info(sp->rs, &info);
	seq_printf(s, "id: 0x%08x\nversion: %u.%u\ncontexts: %u\nvectors: %u\nvram_bytes: %llu\n",
		   info.id, info.version >> 16, info.version & 0xffff,
		   info.contexts, info.vectors, info.vram_size);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(vslice_state);

/* Called from the Rust module init, before the PCI driver registers. */
int vslice_shim_init(void)
{
	vslice_debugfs_root = debugfs_create_dir("vslice", NULL);
	return 0;
}

/* Called from the Rust module exit, after the PCI driver unregistered. */
void vslice_shim_exit(void)
{
	debugfs_remove(vslice_debugfs_root);
}

/*
 * Called from the Rust probe, last: @rs stays valid until
 * vslice_shim_parent_remove() returns.
 */
int vslice_shim_parent_add(struct pci_dev *pdev,
			   const struct vslice_rs_parent *rs,
			   struct vslice_shim_parent **out)
{
	struct vslice_shim_parent *sp;

	sp = kzalloc_obj(*sp);
	if (!sp)
		return -ENOMEM;
	sp->pdev = pdev;
	sp->rs = rs;
	sp->dir = debugfs_create_dir(pci_name(pdev), vslice_debugfs_root);
	debugfs_create_file("state", 0444, sp->dir, sp, &vslice_state_fops);
	*out = sp;
	return 0;
}

/* Called from the Rust unbind path; waits for debugfs readers. */
void vslice_shim_parent_remove(struct vslice_shim_parent *sp)
{
	debugfs_remove(sp->dir);
	kfree(sp);
}
