// SPDX-License-Identifier: GPL-2.0
/*
 * vslice_shim.c - the C half of vslice: the kernel structures and
 * function-pointer tables Rust has no bindings for (mdev driver, mdev
 * parent and types, vfio_device_ops, the per-parent rwsem, IRQ and debugfs
 * plumbing), and nothing else. Every decision is a call into Rust through
 * vslice_shim.h; the lifecycle protocol is at the top of
 * rust-driver/parent.rs.
 *
 * Objects and lifetimes:
 * - module: the debugfs root, the "vslice" class, the mdev driver.
 * - struct vslice_shim_parent, one per bound PCI device, embeds a class
 *   device (child of the PCI device, named after it) that is the mdev
 *   parent device. mdev types and children pin that device, so its
 *   release() - the last reference - frees the parent's memory and drops
 *   C's reference to the Rust parent state. Module exit waits for every
 *   release (vslice_live_parents).
 * - struct vslice_shim_instance, one per mdev child: a vfio_device whose
 *   release() frees the Rust instance.
 *
 * Locks: sp->rwsem, per parent. Taken shared (trylock, -ENODEV) by child
 * create and by parent-level operations (self-test); shared (blocking,
 * never across waiting for users) by child remove; exclusive only by
 * parent removal while it marks the parent Removing. Order: the mdev
 * core's unreg_sem, then sp->rwsem. No lock of ours is held across
 * mdev_unregister_parent().
 */

#include <linux/debugfs.h>
#include <linux/interrupt.h>
#include <linux/mdev.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/rwsem.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/vfio.h>
#include <linux/wait_bit.h>

#include "vslice_shim.h"

struct vslice_shim_vec {
	struct vslice_shim_parent *sp;
	u32 index;
	bool requested;
};

struct vslice_shim_type {
	struct mdev_type type;
	struct vslice_shim_parent *sp;
	u32 index;
	struct vslice_type_info info;
};

struct vslice_shim_parent {
	struct device dev;
	struct mdev_parent parent;
	struct rw_semaphore rwsem;
	struct pci_dev *pdev;
	const struct vslice_rs_parent *rs;
	struct dentry *dir;
	u32 nvec;
	struct vslice_shim_vec *vecs;
	u32 ntypes;
	struct vslice_shim_type types[VSLICE_MAX_TYPES];
	struct mdev_type *type_ptrs[VSLICE_MAX_TYPES];
	bool registered;
};

struct vslice_shim_instance {
	struct vfio_device vdev;
	struct vslice_shim_parent *sp;
	struct vslice_rs_instance *rs;
};

static struct dentry *vslice_debugfs_root;
static atomic_t vslice_live_parents = ATOMIC_INIT(0);
static const struct class vslice_class = { .name = "vslice" };
static struct mdev_driver vslice_mdev_driver;

/* ---- debugfs ----------------------------------------------------------- */

/* <root>/<bdf>/state; no lock held: Rust takes its own. */
static int vslice_state_show(struct seq_file *s, void *unused)
{
	static const char * const selftest[] = { "not run", "passed", "failed" };
	static const char * const state[] = { "live", "removing", "gone" };
	struct vslice_shim_parent *sp = s->private;
	struct vslice_parent_info info = {};
	struct vslice_instance_info ii;
	u32 i;

	vslice_rs_parent_info(sp->rs, &info);
	seq_printf(s, "id: 0x%08x\nversion: %u.%u\ncontexts: %u\nvectors: %u\nvram_bytes: %llu\n",
		   info.id, info.version >> 16, info.version & 0xffff,
		   info.contexts, info.vectors, info.vram_size);
	seq_printf(s, "state: %s\ninstances: %u\nvram_units_used: 0x%02x\nvram_unit_bytes: %llu\nfree_contexts: %u\n",
		   state[min_t(u32, info.state, ARRAY_SIZE(state) - 1)],
		   info.instances, info.units_used, info.unit_bytes,
		   info.free_contexts);
	seq_printf(s, "live_id: 0x%08x\nfatal_errors: %u\n", info.live_id, info.fatal_errors);
	seq_printf(s, "irqs_handled: %llu\nselftest: %s\nselftest_irqs: %u\nselftest_checksum: 0x%016llx\n",
		   info.irqs_handled,
		   selftest[min_t(u32, info.selftest, ARRAY_SIZE(selftest) - 1)],
		   info.selftest_irqs, info.selftest_checksum);
	for (i = 0; !vslice_rs_instance_info(sp->rs, i, &ii); i++)
		seq_printf(s, "instance %u: type %s vram 0x%llx+0x%llx contexts %u..%u\n",
			   ii.id, ii.type < sp->ntypes ? sp->types[ii.type].info.name : "?",
			   ii.vram_base, ii.vram_size, ii.first_context,
			   ii.first_context + ii.contexts - 1);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(vslice_state);

/* <root>/<bdf>/selftest: any write runs the self-test (a parent-level op). */
static ssize_t vslice_selftest_write(struct file *file, const char __user *buf,
				     size_t count, loff_t *ppos)
{
	struct vslice_shim_parent *sp = file->private_data;
	int ret;

	if (!down_read_trylock(&sp->rwsem))
		return -ENODEV;
	ret = vslice_rs_selftest(sp->rs);
	up_read(&sp->rwsem);
	return ret ? ret : count;
}

static const struct file_operations vslice_selftest_fops = {
	.owner = THIS_MODULE,
	.open = simple_open,
	.write = vslice_selftest_write,
	.llseek = noop_llseek,
};

/* ---- IRQs --------------------------------------------------------------- */

/* Hard-IRQ handler of every vector; Rust decides. */
static irqreturn_t vslice_shim_irq(int irq, void *data)
{
	struct vslice_shim_vec *v = data;

	return vslice_rs_irq(v->sp->rs, v->index) ? IRQ_HANDLED : IRQ_NONE;
}

/* Frees whatever vslice_shim_irqs_enable() set up; unbind path, no locks. */
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

/* Called from the Rust probe: exactly @nvec MSI-X vectors. */
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

/* ---- instances: VFIO device --------------------------------------------- */

/* Last reference to the VFIO device: after remove and after every user. */
static void vslice_vfio_release(struct vfio_device *vdev)
{
	struct vslice_shim_instance *inst =
		container_of(vdev, struct vslice_shim_instance, vdev);

	if (inst->rs)
		vslice_rs_instance_release(inst->rs);
}

static const struct vfio_device_ops vslice_vfio_ops = {
	.name = "vslice",
	.release = vslice_vfio_release,
	.bind_iommufd = vfio_iommufd_emulated_bind,
	.unbind_iommufd = vfio_iommufd_emulated_unbind,
	.attach_ioas = vfio_iommufd_emulated_attach_ioas,
	.detach_ioas = vfio_iommufd_emulated_detach_ioas,
};

/* ---- instances: mdev driver ---------------------------------------------- */

/* mdev core: child create, with the core's unreg_sem held shared. */
static int vslice_mdev_probe(struct mdev_device *mdev)
{
	struct vslice_shim_type *t = container_of(mdev->type, struct vslice_shim_type, type);
	struct vslice_shim_parent *sp = t->sp;
	struct vslice_shim_instance *inst;
	int ret;

	if (!down_read_trylock(&sp->rwsem))
		return -ENODEV;
	inst = vfio_alloc_device(vslice_shim_instance, vdev, &mdev->dev, &vslice_vfio_ops);
	if (IS_ERR(inst)) {
		ret = PTR_ERR(inst);
		dev_err(&mdev->dev, "cannot allocate the VFIO device: %d\n", ret);
		goto out;
	}
	inst->sp = sp;
	ret = vslice_rs_instance_create(sp->rs, t->index, &inst->rs);
	if (ret)
		goto put;
	ret = vfio_register_emulated_iommu_dev(&inst->vdev);
	if (ret) {
		dev_err(&mdev->dev, "cannot register the VFIO device: %d\n", ret);
		goto put;
	}
	dev_set_drvdata(&mdev->dev, inst);
	up_read(&sp->rwsem);
	return 0;
put:
	vfio_put_device(&inst->vdev);
out:
	up_read(&sp->rwsem);
	return ret;
}

/*
 * mdev core: child remove (sysfs remove, or parent unregistration), with
 * the core's unreg_sem held. Waits for the instance's users to close.
 */
static void vslice_mdev_remove(struct mdev_device *mdev)
{
	struct vslice_shim_instance *inst = dev_get_drvdata(&mdev->dev);
	struct vslice_shim_parent *sp = inst->sp;

	vfio_unregister_group_dev(&inst->vdev);
	down_read(&sp->rwsem);
	vslice_rs_instance_remove(inst->rs);
	up_read(&sp->rwsem);
	vfio_put_device(&inst->vdev);
}

/* mdev core: sysfs available_instances read; Rust takes its own mutex. */
static unsigned int vslice_mdev_get_available(struct mdev_type *mtype)
{
	struct vslice_shim_type *t = container_of(mtype, struct vslice_shim_type, type);

	return vslice_rs_available(t->sp->rs, t->index);
}

/* mdev core: sysfs description read; the type info is fixed at register. */
static ssize_t vslice_mdev_show_description(struct mdev_type *mtype, char *buf)
{
	struct vslice_shim_type *t = container_of(mtype, struct vslice_shim_type, type);

	return sysfs_emit(buf, "%llu MiB VRAM, %u contexts, %u MSI-X vectors\n",
			  t->info.vram_bytes >> 20, t->info.contexts,
			  t->info.vectors);
}

static struct mdev_driver vslice_mdev_driver = {
	.device_api = VFIO_DEVICE_API_PCI_STRING,
	.driver = {
		.name = "vslice",
		.owner = THIS_MODULE,
		.mod_name = KBUILD_MODNAME,
	},
	.probe = vslice_mdev_probe,
	.remove = vslice_mdev_remove,
	.get_available = vslice_mdev_get_available,
	.show_description = vslice_mdev_show_description,
};

/* ---- parents ------------------------------------------------------------- */

/* The parent device's last reference: after every type and child. */
static void vslice_shim_parent_release(struct device *dev)
{
	struct vslice_shim_parent *sp = container_of(dev, struct vslice_shim_parent, dev);

	vslice_rs_parent_put(sp->rs);
	kfree(sp);
	if (atomic_dec_and_test(&vslice_live_parents))
		wake_up_var(&vslice_live_parents);
}

/*
 * Called from the Rust probe. Takes over one reference to @rs (dropped by
 * vslice_rs_parent_put() in the release above, also on failure here).
 */
int vslice_shim_parent_add(struct pci_dev *pdev,
			   const struct vslice_rs_parent *rs,
			   struct vslice_shim_parent **out)
{
	struct vslice_shim_parent *sp;
	int ret;

	sp = kzalloc_obj(*sp);
	if (!sp) {
		vslice_rs_parent_put(rs);
		return -ENOMEM;
	}
	atomic_inc(&vslice_live_parents);
	sp->pdev = pdev;
	sp->rs = rs;
	init_rwsem(&sp->rwsem);
	device_initialize(&sp->dev);
	sp->dev.parent = &pdev->dev;
	sp->dev.class = &vslice_class;
	sp->dev.release = vslice_shim_parent_release;
	ret = dev_set_name(&sp->dev, "%s", pci_name(pdev));
	if (!ret)
		ret = device_add(&sp->dev);
	if (ret) {
		put_device(&sp->dev);
		return ret;
	}
	sp->dir = debugfs_create_dir(pci_name(pdev), vslice_debugfs_root);
	debugfs_create_file("state", 0444, sp->dir, sp, &vslice_state_fops);
	debugfs_create_file("selftest", 0200, sp->dir, sp, &vslice_selftest_fops);
	*out = sp;
	return 0;
}

/* Called from the Rust probe, last: instances may be created from here on. */
int vslice_shim_parent_register(struct vslice_shim_parent *sp)
{
	int ret;
	u32 i;

	for (i = 0; i < VSLICE_MAX_TYPES; i++) {
		struct vslice_shim_type *t = &sp->types[i];

		if (vslice_rs_type_info(sp->rs, i, &t->info))
			break;
		t->sp = sp;
		t->index = i;
		t->type.sysfs_name = t->info.name;
		t->type.pretty_name = t->info.pretty;
		sp->type_ptrs[i] = &t->type;
	}
	sp->ntypes = i;
	ret = mdev_register_parent(&sp->parent, &sp->dev, &vslice_mdev_driver,
				   sp->type_ptrs, sp->ntypes);
	if (!ret)
		sp->registered = true;
	return ret;
}

/*
 * Called from the Rust unbind path (and on a failed probe). The removal
 * protocol of rust-driver/parent.rs, in order: drain, mark Removing,
 * remove every child, quiesce, free IRQs, drop debugfs and the device.
 */
void vslice_shim_parent_remove(struct vslice_shim_parent *sp)
{
	down_write(&sp->rwsem);
	vslice_rs_parent_removing(sp->rs);
	up_write(&sp->rwsem);
	if (sp->registered)
		mdev_unregister_parent(&sp->parent);
	vslice_rs_parent_quiesce(sp->rs);
	vslice_shim_irqs_free(sp);
	debugfs_remove(sp->dir);
	device_unregister(&sp->dev);
}

/* ---- module ---------------------------------------------------------------- */

/* Called from the Rust module init, before the PCI driver registers. */
int vslice_shim_init(void)
{
	int ret;

	ret = class_register(&vslice_class);
	if (ret)
		return ret;
	ret = mdev_register_driver(&vslice_mdev_driver);
	if (ret) {
		class_unregister(&vslice_class);
		return ret;
	}
	vslice_debugfs_root = debugfs_create_dir("vslice", NULL);
	return 0;
}

/*
 * Called from the Rust module exit, after the PCI driver unregistered:
 * waits until every parent device was released (their release code is in
 * this module).
 */
void vslice_shim_exit(void)
{
	wait_var_event(&vslice_live_parents, !atomic_read(&vslice_live_parents));
	debugfs_remove(vslice_debugfs_root);
	mdev_unregister_driver(&vslice_mdev_driver);
	class_unregister(&vslice_class);
}
