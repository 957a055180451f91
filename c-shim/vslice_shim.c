// SPDX-License-Identifier: GPL-2.0
/*
 * vslice_shim.c - the C half of vslice: kernel structures that Rust has no
 * bindings for or that are simpler as C tables, and nothing else. Every
 * decision is a call into Rust through vslice_shim.h.
 *
 * Owns: the debugfs root (module lifetime) and one struct
 * vslice_shim_parent per bound PCI device: its debugfs directory, its
 * MSI-X vectors and IRQ handlers. Created at the end of the Rust probe,
 * removed by the Rust unbind path after the device was quiesced.
 *
 * Lifetime: the Rust parent state (@rs) outlives the shim parent:
 * vslice_shim_parent_remove() frees every IRQ (free_irq() waits for running
 * handlers) and removes the debugfs files (debugfs_remove() waits for
 * running readers and writers) before Rust drops @rs.
 */

#include <linux/debugfs.h>
#include <linux/interrupt.h>
#include <linux/pci.h>
#include <linux/seq_file.h>
#include <linux/slab.h>

#include "vslice_shim.h"

struct vslice_shim_vec {
	struct vslice_shim_parent *sp;
	u32 index;
	bool requested;
};

struct vslice_shim_parent {
	struct pci_dev *pdev;
	const struct vslice_rs_parent *rs;
	struct dentry *dir;
	u32 nvec;
	struct vslice_shim_vec *vecs;
};

static struct dentry *vslice_debugfs_root;

/* debugfs read of <root>/<bdf>/state; no lock held. */
static int vslice_state_show(struct seq_file *s, void *unused)
{
	static const char * const selftest[] = { "not run", "passed", "failed" };
	struct vslice_shim_parent *sp = s->private;
	struct vslice_parent_info info = {};

	vslice_rs_parent_info(sp->rs, &info);
	seq_printf(s, "id: 0x%08x\nversion: %u.%u\ncontexts: %u\nvectors: %u\nvram_bytes: %llu\n",
		   info.id, info.version >> 16, info.version & 0xffff,
		   info.contexts, info.vectors, info.vram_size);
	seq_printf(s, "irqs_handled: %llu\nselftest: %s\nselftest_irqs: %u\nselftest_checksum: 0x%016llx\n",
		   info.irqs_handled,
		   selftest[info.selftest < ARRAY_SIZE(selftest) ? info.selftest : 2],
		   info.selftest_irqs, info.selftest_checksum);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(vslice_state);

/* debugfs write of <root>/<bdf>/selftest: any write runs the self-test. */
static ssize_t vslice_selftest_write(struct file *file, const char __user *buf,
				     size_t count, loff_t *ppos)
{
	struct vslice_shim_parent *sp = file->private_data;
	int ret;

	ret = vslice_rs_selftest(sp->rs);
	return ret ? ret : count;
}

static const struct file_operations vslice_selftest_fops = {
	.owner = THIS_MODULE,
	.open = simple_open,
	.write = vslice_selftest_write,
	.llseek = noop_llseek,
};

/* Hard-IRQ handler of every vector; Rust decides. */
static irqreturn_t vslice_shim_irq(int irq, void *data)
{
	struct vslice_shim_vec *v = data;

	return vslice_rs_irq(v->sp->rs, v->index) ? IRQ_HANDLED : IRQ_NONE;
}

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
 * Called from the Rust probe: @rs stays valid until
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
	debugfs_create_file("selftest", 0200, sp->dir, sp, &vslice_selftest_fops);
	*out = sp;
	return 0;
}

static void vslice_shim_irqs_free(struct vslice_shim_parent *sp)
{
	u32 i;

	if (!sp->vecs)
		return;
	for (i = 0; i < sp->nvec; i++)
		if (sp->vecs[i].requested)
			free_irq(pci_irq_vector(sp->pdev, i), &sp->vecs[i]);
	pci_free_irq_vectors(sp->pdev);
	kfree(sp->vecs);
	sp->vecs = NULL;
}

/*
 * Called from the Rust probe after vslice_shim_parent_add(): exactly @nvec
 * MSI-X vectors, each with vslice_shim_irq() as handler.
 */
int vslice_shim_irqs_enable(struct vslice_shim_parent *sp, u32 nvec)
{
	struct pci_dev *pdev = sp->pdev;
	int ret;
	u32 i;

	sp->vecs = kcalloc(nvec, sizeof(*sp->vecs), GFP_KERNEL);
	if (!sp->vecs)
		return -ENOMEM;
	ret = pci_alloc_irq_vectors(pdev, nvec, nvec, PCI_IRQ_MSIX);
	if (ret < 0) {
		kfree(sp->vecs);
		sp->vecs = NULL;
		return ret;
	}
	sp->nvec = nvec;
	for (i = 0; i < nvec; i++) {
		sp->vecs[i].sp = sp;
		sp->vecs[i].index = i;
		ret = request_irq(pci_irq_vector(pdev, i), vslice_shim_irq, 0,
				  "vslice", &sp->vecs[i]);
		if (ret) {
			vslice_shim_irqs_free(sp);
			return ret;
		}
		sp->vecs[i].requested = true;
	}
	return 0;
}

/*
 * Called from the Rust unbind path with the device quiesced: frees the
 * IRQs (waiting for handlers) and the debugfs files (waiting for users).
 */
void vslice_shim_parent_remove(struct vslice_shim_parent *sp)
{
	debugfs_remove(sp->dir);
	vslice_shim_irqs_free(sp);
	kfree(sp);
}
