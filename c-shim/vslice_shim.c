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
 *   release() frees the Rust instance. Module exit also waits for every
 *   such release (vslice_live_vdevs): a user's last fd can outlive the
 *   child's removal and the parent's.
 *
 * Locks: sp->rwsem, per parent: the driver's own guarantee that no
 * parent-level operation of ours (child create, self-test) runs once the
 * parent's removal started. Those take it shared with trylock (-ENODEV
 * when it is held exclusive) and never block on it; parent removal holds
 * it exclusive from before it marks the parent Removing until the device
 * is quiesced, across mdev_unregister_parent(), which is safe because
 * nothing the core calls meanwhile (child probe: trylock; child remove
 * and the VFIO callbacks: not at all) waits for it.
 * Per parent too: inst_lock (the instance list), taken before any
 * instance's memory_lock; vec_lock (which MSI-X vectors exist), a leaf
 * taken by whatever programs a context (an instance's reset, under its
 * locks below; the scrub work; the self-test) and by unbind.
 * Per instance: igate (REQ trigger, MSI-X routes), then memory_lock
 * (shared by BAR accesses and VRAM mapping faults, which run under the
 * mm's mmap_lock; exclusive by whatever stops the BARs decoding, which
 * then zaps the mapping). No user copy happens under memory_lock.
 * DMA translation has its own lock, in Rust (rust-driver/dma.rs), never
 * held across pinning or unpinning; pinning takes the mm's mmap_lock, so
 * nothing here pins or unpins with memory_lock held. xlate_work calls in
 * under inst_lock.
 * Migration, per instance: state_mutex (the FSM state and which data
 * files exist), then a data file's lock, then igate and memory_lock
 * (write-protecting the VRAM mapping, loading a stream, reset). A data
 * file's read copies to user space under its lock, which may fault on
 * the instance's own mapping (mmap_lock, then memory_lock shared); no
 * path takes a file's lock or state_mutex under mmap_lock or
 * memory_lock, and none of these locks is taken by a path that holds the
 * device set's lock but close_device, which takes state_mutex first of
 * ours. So VFIO_DEVICE_RESET simply takes state_mutex: the deferred-reset
 * dance of mtty and mlx5 guards against a PCI reset path that mdev
 * instances do not have.
 */

#include <linux/anon_inodes.h>
#include <linux/crc32.h>
#include <linux/debugfs.h>
#include <linux/dma-mapping.h>
#include <linux/eventfd.h>
#include <linux/file.h>
#include <linux/interrupt.h>
#include <linux/iova_bitmap.h>
#include <linux/iommu.h>
#include <linux/list.h>
#include <linux/mdev.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/ratelimit.h>
#include <linux/rwsem.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/vfio.h>
#include <linux/wait_bit.h>
#include <linux/workqueue.h>

#include "vslice_shim.h"
#include "vslice_shim_logic.h"

struct vslice_shim_vec {
	struct vslice_shim_parent *sp;
	u32 index;
	bool requested;
	/* In /proc/interrupts: "vslice[<bdf>]:global" or ":ctx<n>". */
	char name[40];
	/* The owning instance's route (see "instances: VFIO device"). */
	spinlock_t lock;
	struct eventfd_ctx *trigger;
	bool masked;
	bool pending;
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
	/* vecs (freed at unbind) and which vectors exist and are requested. */
	struct mutex vec_lock;
	u32 nvec;
	u32 nvec_alloc;
	struct vslice_shim_vec *vecs;
	u32 ntypes;
	struct vslice_shim_type types[VSLICE_MAX_TYPES];
	struct mdev_type *type_ptrs[VSLICE_MAX_TYPES];
	bool registered;
	/* The instances with a registered VFIO device, for fatal_work. */
	struct mutex inst_lock;
	struct list_head instances;
	/* Cuts every instance off after a fatal device error (sleeps). */
	struct work_struct fatal_work;
	/* Answers the instances' DMA translation faults (pins: sleeps). */
	struct work_struct xlate_work;
	/* Runs the VRAM scrubs (rust-driver/scrub.rs); re-arms itself. */
	struct delayed_work scrub_work;
};

struct vslice_shim_instance {
	struct vfio_device vdev;
	struct vslice_shim_parent *sp;
	struct vslice_rs_instance *rs;
	/* Guards req_trigger: SET_IRQS, request and close_device. */
	struct mutex igate;
	struct eventfd_ctx *req_trigger;
	/* When the current removal first asked the user (request count 0). */
	unsigned long req_since;
	/* Orders VRAM mapping faults against zaps (see the locks above). */
	struct rw_semaphore memory_lock;
	/* On sp->instances, under sp->inst_lock. */
	struct list_head node;
	/* Migration: the FSM state and the data files, under state_mutex. */
	struct mutex state_mutex;
	enum vfio_device_mig_state mig_state;
	struct vslice_mig_file *saving;
	struct vslice_mig_file *resuming;
};

/*
 * A migration data file: the fd user space reads the stream from (saving)
 * or writes it to (resuming). Rust's stream lives as long as the file is
 * enabled; disabling it (the session ended, reset, last close) frees the
 * stream, and later reads and writes get -ENODEV.
 */
struct vslice_mig_file {
	struct file *filp;
	/* Serialises reads, writes and ioctls on the file, and disabling. */
	struct mutex lock;
	struct vslice_shim_instance *inst;
	struct vslice_rs_stream *rs;
};

static struct dentry *vslice_debugfs_root;
static atomic_t vslice_live_parents = ATOMIC_INIT(0);
/* VFIO devices not yet released: their release() is code of this module. */
static atomic_t vslice_live_vdevs = ATOMIC_INIT(0);
static const struct class vslice_class = { .name = "vslice" };
static struct mdev_driver vslice_mdev_driver;

/*
 * Runs the scrub work if Rust queued a scrub: @now (the bind, the hold
 * let go) at once, else (a release) within the batching window Rust
 * gives, which a later release does not push back. Callers hold
 * sp->rwsem shared or are part of the removal before the work is
 * cancelled, so it never runs after that.
 */
static void vslice_scrub_kick(struct vslice_shim_parent *sp, bool now)
{
	u32 ms = vslice_rs_scrub_wanted(sp->rs);

	if (ms && now)
		mod_delayed_work(system_dfl_wq, &sp->scrub_work, 0);
	else if (ms)
		queue_delayed_work(system_dfl_wq, &sp->scrub_work, msecs_to_jiffies(ms));
}

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
	seq_printf(s, "state: %s\ninstances: %u\nvram_units: %u\nvram_unit_bytes: %llu\n",
		   state[min_t(u32, info.state, ARRAY_SIZE(state) - 1)],
		   info.instances, info.units, info.unit_bytes);
	seq_printf(s, "vram_units_used: 0x%016llx%016llx%016llx%016llx\n",
		   info.units_used[3], info.units_used[2], info.units_used[1],
		   info.units_used[0]);
	seq_printf(s, "vram_units_dirty: %u\nvram_units_bad: %u\nscrubs_pending: %u\nfree_contexts: %u\n",
		   info.units_dirty, info.units_bad, info.scrubs_pending,
		   info.free_contexts);
	seq_printf(s, "live_id: 0x%08x\nfatal_errors: %u\n", info.live_id, info.fatal_errors);
	seq_printf(s, "irqs_handled: %llu\nselftest: %s\nselftest_irqs: %u\nselftest_checksum: 0x%016llx\n",
		   info.irqs_handled,
		   selftest[min_t(u32, info.selftest, ARRAY_SIZE(selftest) - 1)],
		   info.selftest_irqs, info.selftest_checksum);
	seq_printf(s, "selftest_dma_bytes: %llu\nselftest_dma_in_ns: %llu\nselftest_dma_out_ns: %llu\n",
		   info.selftest_dma_bytes, info.selftest_dma_in_ns, info.selftest_dma_out_ns);
	for (i = 0; !vslice_rs_instance_info(sp->rs, i, &ii); i++)
		seq_printf(s, "instance %u: type %s vram 0x%llx+0x%llx contexts %u..%u\n",
			   ii.id, ii.type < sp->ntypes ? sp->types[ii.type].info.name : "?",
			   ii.vram_base, ii.vram_size, ii.first_context,
			   ii.first_context + ii.contexts - 1);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(vslice_state);

/* <root>/stats: module-wide object counts, from Rust. */
static int vslice_stats_show(struct seq_file *s, void *unused)
{
	struct vslice_stats st = {};

	vslice_rs_stats(&st);
	seq_printf(s, "instances_made: %llu\ninstances_released: %llu\n",
		   st.instances_made, st.instances_released);
	seq_printf(s, "parents_made: %llu\nparents_released: %llu\n",
		   st.parents_made, st.parents_released);
	seq_printf(s, "mmap_faults: %llu\n", st.mmap_faults);
	seq_printf(s, "pinned_pages: %llu\n", st.pinned_pages);
	seq_printf(s, "dma_faults_resolved: %llu\ndma_faults_refused: %llu\n",
		   st.dma_faults_resolved, st.dma_faults_refused);
	seq_printf(s, "creates: %llu\ncreate_ns: %llu\n", st.creates, st.create_ns);
	seq_printf(s, "create_wait_ns: %llu\nremoves: %llu\nremove_ns: %llu\n",
		   st.create_wait_ns, st.removes, st.remove_ns);
	seq_printf(s, "programs: %llu\nprogram_ns: %llu\n", st.programs, st.program_ns);
	seq_printf(s, "scrubs: %llu\nscrub_ns: %llu\nscrub_failures: %llu\n",
		   st.scrubs, st.scrub_ns, st.scrub_failures);
	seq_printf(s, "driver_bytes: %llu\n", st.driver_bytes);
	seq_printf(s, "mig_jobs_moved: %llu\nmig_jobs_resumed: %llu\n",
		   st.mig_jobs_moved, st.mig_jobs_resumed);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(vslice_stats);

/*
 * <root>/<bdf>/selftest: writing N runs the self-test (a parent-level op)
 * with N bytes in its DMA pass (Rust says what N may be).
 */
static ssize_t vslice_selftest_write(struct file *file, const char __user *buf,
				     size_t count, loff_t *ppos)
{
	struct vslice_shim_parent *sp = file->private_data;
	u64 len;
	int ret;

	ret = kstrtou64_from_user(buf, count, 0, &len);
	if (ret)
		return ret;
	if (!down_read_trylock(&sp->rwsem))
		return -ENODEV;
	ret = vslice_rs_selftest(sp->rs, len);
	vslice_scrub_kick(sp, false);
	up_read(&sp->rwsem);
	return ret ? ret : count;
}

/*
 * <root>/<bdf>/scrub_hold: writing 1 makes queued VRAM scrubs wait, 0 lets
 * them go (tests create on units that are certainly still dirty).
 */
static ssize_t vslice_scrub_hold_write(struct file *file, const char __user *buf,
				       size_t count, loff_t *ppos)
{
	struct vslice_shim_parent *sp = file->private_data;
	bool on;
	int ret;

	ret = kstrtobool_from_user(buf, count, &on);
	if (ret)
		return ret;
	if (!down_read_trylock(&sp->rwsem))
		return -ENODEV;
	vslice_rs_scrub_hold(sp->rs, on);
	vslice_scrub_kick(sp, true);
	up_read(&sp->rwsem);
	return count;
}

static const struct file_operations vslice_scrub_hold_fops = {
	.owner = THIS_MODULE,
	.open = simple_open,
	.write = vslice_scrub_hold_write,
	.llseek = noop_llseek,
};

static const struct file_operations vslice_selftest_fops = {
	.owner = THIS_MODULE,
	.open = simple_open,
	.write = vslice_selftest_write,
	.llseek = noop_llseek,
};

/* ---- IRQs --------------------------------------------------------------- */

/*
 * Hard-IRQ handler of every vector. Rust decides: the driver's own, not
 * ours, or an instance's, which goes to the eventfd its user gave.
 */
static irqreturn_t vslice_shim_irq(int irq, void *data)
{
	struct vslice_shim_vec *v = data;

	switch (vslice_rs_irq(v->sp->rs, v->index)) {
	case VSLICE_IRQ_ROUTE:
		spin_lock(&v->lock);
		if (v->trigger && v->masked)
			v->pending = true;
		else if (v->trigger)
			eventfd_signal(v->trigger);
		spin_unlock(&v->lock);
		return IRQ_HANDLED;
	case VSLICE_IRQ_FATAL:
		schedule_work(&v->sp->fatal_work);
		/* A translation fault acknowledged with it still needs an answer. */
		schedule_work(&v->sp->xlate_work);
		return IRQ_HANDLED;
	case VSLICE_IRQ_XLATE:
		schedule_work(&v->sp->xlate_work);
		return IRQ_HANDLED;
	case VSLICE_IRQ_SCRUB:
		mod_delayed_work(system_dfl_wq, &v->sp->scrub_work, 0);
		return IRQ_HANDLED;
	case VSLICE_IRQ_HANDLED:
		return IRQ_HANDLED;
	default:
		return IRQ_NONE;
	}
}

/*
 * A vector costs the platform work to set up and tear down (under a
 * hypervisor, an exit per MSI-X table write), and a 255-context device
 * has 256 of them, most unused at any moment. So where MSI-X allows it
 * (pci_msix_can_alloc_dyn()), probe allocates only the global vector and
 * a context's vector is allocated and requested when the context is first
 * programmed (vslice_shim_irq_use()), then kept until unbind. Elsewhere
 * probe requests them all.
 */

/* Allocates (if need be) and requests vector @i. */
static int vslice_shim_vec_request(struct vslice_shim_parent *sp, u32 i)
{
	struct vslice_shim_vec *v = &sp->vecs[i];
	struct msi_map map = { .index = i };
	int ret;

	lockdep_assert_held(&sp->vec_lock);
	if (v->requested)
		return 0;
	if (i >= sp->nvec_alloc) {
		map = pci_msix_alloc_irq_at(sp->pdev, i, NULL);
		if (map.index < 0)
			return map.index;
	} else {
		map.virq = pci_irq_vector(sp->pdev, i);
	}
	ret = request_irq(map.virq, vslice_shim_irq, 0, v->name, v);
	if (ret) {
		if (i >= sp->nvec_alloc)
			pci_msix_free_irq(sp->pdev, map);
		return ret;
	}
	v->requested = true;
	return 0;
}

/* Frees whatever vslice_shim_irqs_enable() and _irq_use() set up. */
static void vslice_shim_irqs_free(struct vslice_shim_parent *sp)
{
	u32 i;

	mutex_lock(&sp->vec_lock);
	if (sp->vecs) {
		for (i = 0; i < sp->nvec; i++)
			if (sp->vecs[i].requested)
				free_irq(pci_irq_vector(sp->pdev, i), &sp->vecs[i]);
		pci_free_irq_vectors(sp->pdev);
		kfree(sp->vecs);
		sp->vecs = NULL;
	}
	mutex_unlock(&sp->vec_lock);
}

/* Called from the Rust probe: @nvec MSI-X vectors, requested now or on use. */
int vslice_shim_irqs_enable(struct vslice_shim_parent *sp, u32 nvec)
{
	struct pci_dev *pdev = sp->pdev;
	int ret, have = pci_msix_vec_count(pdev);
	u32 i, now;

	/* The device's register and its capability must agree. */
	if (have < 0 || nvec > have || !nvec) {
		pci_err(pdev, "device reports %u vectors but its MSI-X capability has %d\n",
			nvec, have);
		return -EINVAL;
	}
	sp->vecs = kcalloc(nvec, sizeof(*sp->vecs), GFP_KERNEL);
	if (!sp->vecs)
		return -ENOMEM;
	now = pci_msix_can_alloc_dyn(pdev) ? 1 : nvec;
	ret = pci_alloc_irq_vectors(pdev, now, now, PCI_IRQ_MSIX);
	if (ret < 0) {
		kfree(sp->vecs);
		sp->vecs = NULL;
		return ret;
	}
	sp->nvec = nvec;
	sp->nvec_alloc = now;
	for (i = 0; i < nvec; i++) {
		sp->vecs[i].sp = sp;
		sp->vecs[i].index = i;
		spin_lock_init(&sp->vecs[i].lock);
		if (i)
			snprintf(sp->vecs[i].name, sizeof(sp->vecs[i].name), "vslice[%s]:ctx%u",
				 pci_name(pdev), i - 1);
		else
			snprintf(sp->vecs[i].name, sizeof(sp->vecs[i].name), "vslice[%s]:global",
				 pci_name(pdev));
	}
	mutex_lock(&sp->vec_lock);
	for (i = 0, ret = 0; i < now && !ret; i++)
		ret = vslice_shim_vec_request(sp, i);
	mutex_unlock(&sp->vec_lock);
	if (ret)
		vslice_shim_irqs_free(sp);
	return ret;
}

/* Called from Rust before it programs a context to raise vector @h. */
int vslice_shim_irq_use(struct vslice_shim_parent *sp, u32 h)
{
	int ret = -ENODEV;

	mutex_lock(&sp->vec_lock);
	if (sp->vecs)
		ret = h < sp->nvec ? vslice_shim_vec_request(sp, h) : -EINVAL;
	mutex_unlock(&sp->vec_lock);
	return ret;
}

/* ---- instances: VFIO device --------------------------------------------- */

/*
 * The instance's MSI-X vectors are routes: instance vector i is the
 * parent's vector h (Rust says which), whose hard-IRQ handler signals the
 * eventfd stored in sp->vecs[h] under that vector's spinlock. Setting or
 * clearing a route takes the same lock, so once a route is cleared no
 * handler can still signal the old eventfd, and it is put only after that.
 */

/* Installs @trigger (or NULL) as the route of hw vector @h; puts the old. */
static void vslice_route_set(struct vslice_shim_parent *sp, u32 h,
			     struct eventfd_ctx *trigger)
{
	struct vslice_shim_vec *v = &sp->vecs[h];
	struct eventfd_ctx *old;
	unsigned long flags;

	spin_lock_irqsave(&v->lock, flags);
	old = v->trigger;
	v->trigger = trigger;
	v->masked = false;
	v->pending = false;
	spin_unlock_irqrestore(&v->lock, flags);
	if (old)
		eventfd_ctx_put(old);
}

/* SET_IRQS actions other than assigning eventfds, on hw vector @h. */
static void vslice_route_action(struct vslice_shim_parent *sp, u32 h, u32 action)
{
	struct vslice_shim_vec *v = &sp->vecs[h];
	unsigned long flags;

	spin_lock_irqsave(&v->lock, flags);
	switch (action) {
	case VFIO_IRQ_SET_ACTION_MASK:
		v->masked = true;
		break;
	case VFIO_IRQ_SET_ACTION_UNMASK:
		v->masked = false;
		if (v->pending && v->trigger)
			eventfd_signal(v->trigger);
		v->pending = false;
		break;
	default: /* TRIGGER without eventfds: fire, as the hardware would */
		if (v->trigger && !v->masked)
			eventfd_signal(v->trigger);
		else if (v->trigger)
			v->pending = true;
		break;
	}
	spin_unlock_irqrestore(&v->lock, flags);
}

static int vslice_irq_count(struct vslice_shim_instance *inst, u32 index)
{
	u32 first;

	switch (index) {
	case VFIO_PCI_MSIX_IRQ_INDEX:
		return vslice_rs_instance_vectors(inst->rs, &first);
	case VFIO_PCI_REQ_IRQ_INDEX:
		return 1;
	default:
		return 0;
	}
}

/*
 * The parent's vectors behind the instance's vectors @start..@start+@count
 * (one call into Rust: they are contiguous); *@h is the first. -EINVAL if
 * the range is not the instance's or not the parent's.
 */
static int vslice_hw_vectors(struct vslice_shim_instance *inst, u32 start, u32 count,
			     u32 *h)
{
	u32 first, n = vslice_rs_instance_vectors(inst->rs, &first);

	if (start > n || count > n - start || first > inst->sp->nvec ||
	    n > inst->sp->nvec - first)
		return -EINVAL;
	*h = first + start;
	return 0;
}

/* Clears every MSI-X route of the instance. igate held. */
static void vslice_msix_teardown(struct vslice_shim_instance *inst)
{
	u32 i, h, n = vslice_irq_count(inst, VFIO_PCI_MSIX_IRQ_INDEX);

	lockdep_assert_held(&inst->igate);
	if (vslice_hw_vectors(inst, 0, n, &h))
		return;
	for (i = 0; i < n; i++)
		vslice_route_set(inst->sp, h + i, NULL);
}

/* Unmaps every VRAM mapping of the instance; memory_lock held exclusive. */
static void vslice_zap_vram(struct vslice_shim_instance *inst)
{
	lockdep_assert_held_write(&inst->memory_lock);
	unmap_mapping_range(inst->vdev.inode->i_mapping,
			    vslice_region_pos(VFIO_PCI_BAR2_REGION_INDEX, 0),
			    VSLICE_REGION_MASK + 1, true);
}

/*
 * After a fatal device error, no user keeps using what the device may have
 * corrupted: every instance stops answering (BAR accesses EIO, mapping
 * zapped, SIGBUS) until its user resets it with VFIO_DEVICE_RESET.
 */
static void vslice_fatal_work(struct work_struct *work)
{
	struct vslice_shim_parent *sp = container_of(work, struct vslice_shim_parent, fatal_work);
	struct vslice_shim_instance *inst;

	mutex_lock(&sp->inst_lock);
	list_for_each_entry(inst, &sp->instances, node) {
		down_write(&inst->memory_lock);
		vslice_rs_instance_fail(inst->rs);
		vslice_zap_vram(inst);
		up_write(&inst->memory_lock);
	}
	mutex_unlock(&sp->inst_lock);
}

/* Rust says when to look again while a scrub runs (0: none runs). */
static void vslice_scrub_work(struct work_struct *work)
{
	struct vslice_shim_parent *sp =
		container_of(to_delayed_work(work), struct vslice_shim_parent, scrub_work);
	u32 ms = vslice_rs_scrub_work(sp->rs);

	if (ms)
		queue_delayed_work(system_dfl_wq, &sp->scrub_work, msecs_to_jiffies(ms));
}

static void vslice_xlate_work(struct work_struct *work)
{
	struct vslice_shim_parent *sp = container_of(work, struct vslice_shim_parent, xlate_work);
	struct vslice_shim_instance *inst;

	mutex_lock(&sp->inst_lock);
	list_for_each_entry(inst, &sp->instances, node)
		vslice_rs_instance_faults(inst->rs);
	mutex_unlock(&sp->inst_lock);
}

/* ---- instances: DMA plumbing (decisions in rust-driver/dma.rs) ----------- */

void *vslice_shim_coherent_alloc(struct pci_dev *pdev, u64 len, u64 *dma)
{
	dma_addr_t addr;
	void *cpu;

	cpu = dma_alloc_coherent(&pdev->dev, len, &addr, GFP_KERNEL);
	if (cpu)
		*dma = addr;
	return cpu;
}

void vslice_shim_coherent_free(struct pci_dev *pdev, u64 len, void *cpu, u64 dma)
{
	dma_free_coherent(&pdev->dev, len, cpu, dma);
}

static enum dma_data_direction vslice_dma_dir(u32 write)
{
	return write ? DMA_BIDIRECTIONAL : DMA_TO_DEVICE;
}

int vslice_shim_pin(struct vslice_shim_instance *si, u64 iova, u32 write, u64 *dma)
{
	struct device *dev = &si->sp->pdev->dev;
	struct page *page;
	dma_addr_t addr;
	int ret;

	ret = vfio_pin_pages(&si->vdev, iova, 1, IOMMU_READ | (write ? IOMMU_WRITE : 0), &page);
	if (ret != 1)
		return ret < 0 ? ret : -EFAULT;
	addr = dma_map_page(dev, page, 0, PAGE_SIZE, vslice_dma_dir(write));
	if (dma_mapping_error(dev, addr)) {
		vfio_unpin_pages(&si->vdev, iova, 1);
		return -ENOMEM;
	}
	*dma = addr;
	return 0;
}

void vslice_shim_unpin(struct vslice_shim_instance *si, u64 iova, u64 dma, u32 write)
{
	dma_unmap_page(&si->sp->pdev->dev, dma, PAGE_SIZE, vslice_dma_dir(write));
	vfio_unpin_pages(&si->vdev, iova, 1);
}

/* ---- instances: migration (decisions in rust-driver/migrate.rs) -------- */

void vslice_shim_vram_wp(struct vslice_shim_instance *si)
{
	down_write(&si->memory_lock);
	vslice_zap_vram(si);
	vslice_rs_cpu_log_rotate(si->rs);
	up_write(&si->memory_lock);
}

u32 vslice_shim_crc32c(u32 crc, const u8 *buf, u64 len)
{
	return crc32c(crc, buf, len);
}

/* Ends a data file's session: its stream goes, the fd answers -ENODEV. */
static void vslice_mig_file_disable(struct vslice_mig_file *mf)
{
	mutex_lock(&mf->lock);
	if (mf->rs) {
		vslice_rs_mig_free(mf->rs);
		mf->rs = NULL;
	}
	mutex_unlock(&mf->lock);
}

/* Ends every session of the instance; state_mutex held. */
static void vslice_mig_files_disable(struct vslice_shim_instance *inst)
{
	lockdep_assert_held(&inst->state_mutex);
	if (inst->saving) {
		vslice_mig_file_disable(inst->saving);
		fput(inst->saving->filp);
		inst->saving = NULL;
	}
	if (inst->resuming) {
		vslice_mig_file_disable(inst->resuming);
		fput(inst->resuming->filp);
		inst->resuming = NULL;
	}
}

static int vslice_mig_release(struct inode *inode, struct file *filp)
{
	struct vslice_mig_file *mf = filp->private_data;

	vslice_mig_file_disable(mf);
	mutex_destroy(&mf->lock);
	kfree(mf);
	return 0;
}

/*
 * read() of the saving fd and write() of the resuming fd: stream bytes
 * through a bounce page, Rust making (reading VRAM and registers) or
 * taking (checking, writing VRAM) each piece. A read returns 0 at the end
 * of a STOP_COPY stream and -ENOMSG at pre-copy's temporary end.
 */
static ssize_t vslice_mig_rw(struct file *filp, char __user *ubuf, size_t count,
			     loff_t *pos, bool write)
{
	struct vslice_mig_file *mf = filp->private_data;
	size_t done = 0;
	s64 n = 0;
	u8 *buf;

	if (pos)
		return -ESPIPE;
	buf = kmalloc(PAGE_SIZE, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	mutex_lock(&mf->lock);
	while (done < count) {
		u32 len = min_t(size_t, count - done, PAGE_SIZE);

		if (write && copy_from_user(buf, ubuf + done, len)) {
			n = -EFAULT;
			break;
		}
		if (!mf->rs)
			n = -ENODEV;
		else if (write)
			n = vslice_rs_mig_write(mf->rs, buf, len);
		else
			n = vslice_rs_mig_read(mf->rs, buf, len);
		if (n <= 0)
			break;
		if (!write && copy_to_user(ubuf + done, buf, n)) {
			n = -EFAULT;
			break;
		}
		done += n;
	}
	mutex_unlock(&mf->lock);
	kfree(buf);
	return done ? done : n;
}

static ssize_t vslice_mig_read(struct file *filp, char __user *ubuf, size_t count,
			       loff_t *pos)
{
	return vslice_mig_rw(filp, ubuf, count, pos, false);
}

static ssize_t vslice_mig_write(struct file *filp, const char __user *ubuf, size_t count,
				loff_t *pos)
{
	return vslice_mig_rw(filp, (char __user *)ubuf, count, pos, true);
}

/* VFIO_MIG_GET_PRECOPY_INFO on the saving fd; -EINVAL outside pre-copy. */
static long vslice_mig_ioctl(struct file *filp, unsigned int cmd, unsigned long arg)
{
	struct vslice_mig_file *mf = filp->private_data;
	unsigned long minsz = offsetofend(struct vfio_precopy_info, dirty_bytes);
	struct vfio_precopy_info info;
	int ret;

	if (cmd != VFIO_MIG_GET_PRECOPY_INFO)
		return -ENOTTY;
	if (copy_from_user(&info, (void __user *)arg, minsz))
		return -EFAULT;
	if (info.argsz < minsz)
		return -EINVAL;
	mutex_lock(&mf->lock);
	ret = mf->rs ? vslice_rs_mig_precopy_info(mf->rs, &info.initial_bytes,
						  &info.dirty_bytes) : -ENODEV;
	mutex_unlock(&mf->lock);
	if (ret)
		return ret;
	info.flags = 0;
	return copy_to_user((void __user *)arg, &info, minsz) ? -EFAULT : 0;
}

static const struct file_operations vslice_mig_save_fops = {
	.owner = THIS_MODULE,
	.read = vslice_mig_read,
	.unlocked_ioctl = vslice_mig_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.release = vslice_mig_release,
};

static const struct file_operations vslice_mig_resume_fops = {
	.owner = THIS_MODULE,
	.write = vslice_mig_write,
	.release = vslice_mig_release,
};

/* A data file around a new stream of Rust's; state_mutex held. */
static struct vslice_mig_file *vslice_mig_file_new(struct vslice_shim_instance *inst,
						   bool save, u32 precopy)
{
	struct vslice_mig_file *mf;
	int ret;

	lockdep_assert_held(&inst->state_mutex);
	mf = kzalloc_obj(*mf, GFP_KERNEL_ACCOUNT);
	if (!mf)
		return ERR_PTR(-ENOMEM);
	mutex_init(&mf->lock);
	mf->inst = inst;
	ret = save ? vslice_rs_mig_save(inst->rs, precopy, &mf->rs) :
		     vslice_rs_mig_resume(inst->rs, &mf->rs);
	if (ret)
		goto free;
	mf->filp = anon_inode_getfile("vslice_mig", save ? &vslice_mig_save_fops :
				      &vslice_mig_resume_fops, mf,
				      save ? O_RDONLY : O_WRONLY);
	if (IS_ERR(mf->filp)) {
		ret = PTR_ERR(mf->filp);
		vslice_rs_mig_free(mf->rs);
		goto free;
	}
	stream_open(mf->filp->f_inode, mf->filp);
	/* Dirty logging is on: no CPU write may keep a writable mapping. */
	if (precopy)
		vslice_shim_vram_wp(inst);
	return mf;
free:
	mutex_destroy(&mf->lock);
	kfree(mf);
	return ERR_PTR(ret);
}

/*
 * One arc of the FSM (vfio_mig_get_next_state() gives only these); the
 * file to return for the arcs that start a session. state_mutex held.
 */
static struct file *vslice_mig_step(struct vslice_shim_instance *inst,
				    enum vfio_device_mig_state new)
{
	enum vfio_device_mig_state cur = inst->mig_state;
	struct vslice_mig_file *mf;
	int ret = 0;

	lockdep_assert_held(&inst->state_mutex);
	/* Into and out of the P2P quiescent state: the contexts freeze or thaw. */
	if ((cur == VFIO_DEVICE_STATE_RUNNING && new == VFIO_DEVICE_STATE_RUNNING_P2P) ||
	    (cur == VFIO_DEVICE_STATE_PRE_COPY && new == VFIO_DEVICE_STATE_PRE_COPY_P2P))
		return ERR_PTR(vslice_rs_mig_freeze(inst->rs, 1));
	if ((cur == VFIO_DEVICE_STATE_RUNNING_P2P && new == VFIO_DEVICE_STATE_RUNNING) ||
	    (cur == VFIO_DEVICE_STATE_PRE_COPY_P2P && new == VFIO_DEVICE_STATE_PRE_COPY))
		return ERR_PTR(vslice_rs_mig_freeze(inst->rs, 0));
	/* STOP is RUNNING_P2P to the device: both start no DMA, no interrupt. */
	if ((cur == VFIO_DEVICE_STATE_RUNNING_P2P && new == VFIO_DEVICE_STATE_STOP) ||
	    (cur == VFIO_DEVICE_STATE_STOP && new == VFIO_DEVICE_STATE_RUNNING_P2P))
		return NULL;
	/* The end of a session. */
	if ((cur == VFIO_DEVICE_STATE_PRE_COPY && new == VFIO_DEVICE_STATE_RUNNING) ||
	    (cur == VFIO_DEVICE_STATE_PRE_COPY_P2P && new == VFIO_DEVICE_STATE_RUNNING_P2P) ||
	    (cur == VFIO_DEVICE_STATE_STOP_COPY && new == VFIO_DEVICE_STATE_STOP)) {
		vslice_mig_files_disable(inst);
		return NULL;
	}
	if (cur == VFIO_DEVICE_STATE_RESUMING && new == VFIO_DEVICE_STATE_STOP) {
		mutex_lock(&inst->resuming->lock);
		down_write(&inst->memory_lock);
		ret = inst->resuming->rs ? vslice_rs_mig_load(inst->resuming->rs) : -ENODEV;
		/* The loaded command register may have turned decoding off. */
		vslice_zap_vram(inst);
		up_write(&inst->memory_lock);
		mutex_unlock(&inst->resuming->lock);
		if (ret)
			return ERR_PTR(ret);
		vslice_mig_files_disable(inst);
		return NULL;
	}
	/* The saving group shares the session the first of its arcs started. */
	if (cur == VFIO_DEVICE_STATE_PRE_COPY_P2P && new == VFIO_DEVICE_STATE_STOP_COPY) {
		mutex_lock(&inst->saving->lock);
		ret = inst->saving->rs ? vslice_rs_mig_stop_copy(inst->saving->rs) : -ENODEV;
		mutex_unlock(&inst->saving->lock);
		return ERR_PTR(ret);
	}
	if ((cur == VFIO_DEVICE_STATE_RUNNING && new == VFIO_DEVICE_STATE_PRE_COPY) ||
	    (cur == VFIO_DEVICE_STATE_RUNNING_P2P && new == VFIO_DEVICE_STATE_PRE_COPY_P2P) ||
	    (cur == VFIO_DEVICE_STATE_STOP && new == VFIO_DEVICE_STATE_STOP_COPY)) {
		mf = vslice_mig_file_new(inst, true, new != VFIO_DEVICE_STATE_STOP_COPY);
		if (IS_ERR(mf))
			return ERR_CAST(mf);
		inst->saving = mf;
		get_file(mf->filp);
		return mf->filp;
	}
	if (cur == VFIO_DEVICE_STATE_STOP && new == VFIO_DEVICE_STATE_RESUMING) {
		mf = vslice_mig_file_new(inst, false, 0);
		if (IS_ERR(mf))
			return ERR_CAST(mf);
		inst->resuming = mf;
		get_file(mf->filp);
		return mf->filp;
	}
	/* vfio_mig_get_next_state() gives no other arc. */
	WARN_ON_ONCE(1);
	return ERR_PTR(-EINVAL);
}

/*
 * VFIO core: VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE SET. An arc that fails
 * leaves the instance in the state it reached, except loading a stream,
 * which has changed the device's state half way: ERROR, left only by
 * VFIO_DEVICE_RESET.
 */
static struct file *vslice_mig_set_state(struct vfio_device *vdev,
					 enum vfio_device_mig_state new_state)
{
	struct vslice_shim_instance *inst =
		container_of(vdev, struct vslice_shim_instance, vdev);
	enum vfio_device_mig_state next;
	struct file *res = NULL;
	int ret;

	mutex_lock(&inst->state_mutex);
	/* ERROR has no arcs (the core's helper warns if asked): reset leaves it. */
	if (inst->mig_state == VFIO_DEVICE_STATE_ERROR)
		res = ERR_PTR(-EINVAL);
	while (!res && inst->mig_state != new_state) {
		ret = vfio_mig_get_next_state(vdev, inst->mig_state, new_state, &next);
		if (ret) {
			res = ERR_PTR(ret);
			break;
		}
		res = vslice_mig_step(inst, next);
		if (IS_ERR(res)) {
			if (inst->mig_state == VFIO_DEVICE_STATE_RESUMING ||
			    PTR_ERR(res) == -ENODEV)
				inst->mig_state = VFIO_DEVICE_STATE_ERROR;
			break;
		}
		inst->mig_state = next;
		if (WARN_ON(res && next != new_state)) {
			fput(res);
			res = ERR_PTR(-EINVAL);
			break;
		}
	}
	mutex_unlock(&inst->state_mutex);
	return res;
}

static int vslice_mig_get_state(struct vfio_device *vdev, enum vfio_device_mig_state *state)
{
	struct vslice_shim_instance *inst =
		container_of(vdev, struct vslice_shim_instance, vdev);

	mutex_lock(&inst->state_mutex);
	*state = inst->mig_state;
	mutex_unlock(&inst->state_mutex);
	return 0;
}

static int vslice_mig_get_data_size(struct vfio_device *vdev, unsigned long *stop_copy_length)
{
	struct vslice_shim_instance *inst =
		container_of(vdev, struct vslice_shim_instance, vdev);
	struct vslice_mig_file *mf;

	/* What is left of a session in progress, else a whole stream. */
	mutex_lock(&inst->state_mutex);
	mf = inst->saving;
	if (mf) {
		mutex_lock(&mf->lock);
		*stop_copy_length = vslice_rs_mig_data_size(inst->rs, mf->rs);
		mutex_unlock(&mf->lock);
	} else {
		*stop_copy_length = vslice_rs_mig_data_size(inst->rs, NULL);
	}
	mutex_unlock(&inst->state_mutex);
	return 0;
}

static const struct vfio_migration_ops vslice_mig_ops = {
	.migration_set_state = vslice_mig_set_state,
	.migration_get_state = vslice_mig_get_state,
	.migration_get_data_size = vslice_mig_get_data_size,
};

void vslice_shim_log_dirty(void *dirty, u64 iova, u64 len)
{
	iova_bitmap_set(dirty, iova, len);
}

/* iova_bitmap_set() lives in the IOMMUFD symbol namespace. */
MODULE_IMPORT_NS("IOMMUFD");

/*
 * VFIO core: DMA logging of the guest memory the device writes, which a
 * VMM needs to migrate a guest whose IOMMU back end has no dirty tracking
 * of its own (QEMU wants it from the device or from iommufd hardware).
 * The device writes guest memory only through pages the driver pinned
 * for it, so Rust answers from its translation; any range and page size
 * asked for is served at 4 KiB.
 */
static int vslice_log_start(struct vfio_device *vdev, struct rb_root_cached *ranges,
			    u32 nnodes, u64 *page_size)
{
	struct vslice_shim_instance *inst =
		container_of(vdev, struct vslice_shim_instance, vdev);

	*page_size = PAGE_SIZE;
	vslice_rs_dma_log(inst->rs, 1);
	return 0;
}

static int vslice_log_stop(struct vfio_device *vdev)
{
	struct vslice_shim_instance *inst =
		container_of(vdev, struct vslice_shim_instance, vdev);

	vslice_rs_dma_log(inst->rs, 0);
	return 0;
}

static int vslice_log_read_and_clear(struct vfio_device *vdev, unsigned long iova,
				     unsigned long length, struct iova_bitmap *dirty)
{
	struct vslice_shim_instance *inst =
		container_of(vdev, struct vslice_shim_instance, vdev);

	vslice_rs_dma_log_report(inst->rs, iova, length, dirty);
	return 0;
}

static const struct vfio_log_ops vslice_log_ops = {
	.log_start = vslice_log_start,
	.log_stop = vslice_log_stop,
	.log_read_and_clear = vslice_log_read_and_clear,
};

/*
 * Every user starts RUNNING with no session (open, reset, last close);
 * state_mutex held.
 */
static void vslice_mig_reset(struct vslice_shim_instance *inst)
{
	lockdep_assert_held(&inst->state_mutex);
	vslice_mig_files_disable(inst);
	inst->mig_state = VFIO_DEVICE_STATE_RUNNING;
}

/* How long a user may keep the device after REQ before it is revoked. */
#define VSLICE_REQ_GRACE (10 * HZ)

/* Last reference to the VFIO device: after remove and after every user. */
static void vslice_vfio_release(struct vfio_device *vdev)
{
	struct vslice_shim_instance *inst =
		container_of(vdev, struct vslice_shim_instance, vdev);

	if (inst->rs)
		vslice_rs_instance_release(inst->rs);
	mutex_destroy(&inst->igate);
	mutex_destroy(&inst->state_mutex);
	/*
	 * Last: module exit may proceed once this wakes it. Only the return
	 * from this function is left, as for the parents' release below.
	 */
	if (atomic_dec_and_test(&vslice_live_vdevs))
		wake_up_var(&vslice_live_vdevs);
}

/*
 * VFIO core, from vfio_unregister_group_dev() (instance remove, so also
 * PCI unbind) while a user keeps the device open: every 10 s until the
 * last fd closes. Signals the user's REQ eventfd, as vfio-pci does; the
 * contract (docs/design.md) is that the user closes promptly. A user
 * still there 10 s after the first call loses the device: the BARs stop
 * answering and the VRAM mapping is zapped (further touches SIGBUS), so
 * that nobody keeps using a device that is being taken away. The time is
 * measured, not counted: a signal to the remover makes the core call
 * again at once.
 */
static void vslice_vfio_request(struct vfio_device *vdev, unsigned int count)
{
	struct vslice_shim_instance *inst =
		container_of(vdev, struct vslice_shim_instance, vdev);

	if (!count) {
		inst->req_since = jiffies;
	} else if (time_after_eq(jiffies, inst->req_since + VSLICE_REQ_GRACE)) {
		down_write(&inst->memory_lock);
		vslice_rs_instance_revoke(inst->rs);
		vslice_zap_vram(inst);
		up_write(&inst->memory_lock);
	}
	mutex_lock(&inst->igate);
	if (inst->req_trigger) {
		if (!(count % 10))
			dev_notice_ratelimited(vdev->dev, "asking the user to release the device (%u)\n",
					       count);
		eventfd_signal(inst->req_trigger);
	} else if (count == 0) {
		dev_warn(vdev->dev, "device in use and no REQ eventfd: waiting for the user to close it\n");
	}
	mutex_unlock(&inst->igate);
}

/*
 * VFIO core: the first fd of the device opened; no lock of ours held.
 * Every user starts from a reset function, as vfio-pci gives it.
 */
static int vslice_vfio_open_device(struct vfio_device *vdev)
{
	struct vslice_shim_instance *inst =
		container_of(vdev, struct vslice_shim_instance, vdev);

	return vslice_rs_instance_reset(inst->rs);
}

/*
 * VFIO core: the last fd of the device closed; no lock of ours held. The
 * routes go, and a function reset stops the instance's contexts: no job
 * of a user who left keeps the engine busy (vfio-pci disables the device
 * on close). A device that no longer answers has nothing left to stop.
 */
static void vslice_vfio_close_device(struct vfio_device *vdev)
{
	struct vslice_shim_instance *inst =
		container_of(vdev, struct vslice_shim_instance, vdev);

	mutex_lock(&inst->igate);
	vslice_msix_teardown(inst);
	if (inst->req_trigger) {
		eventfd_ctx_put(inst->req_trigger);
		inst->req_trigger = NULL;
	}
	mutex_unlock(&inst->igate);
	mutex_lock(&inst->state_mutex);
	vslice_mig_reset(inst);
	vslice_rs_instance_reset(inst->rs);
	mutex_unlock(&inst->state_mutex);
	/* The contexts are stopped: nothing of the user's stays pinned. */
	vslice_rs_instance_unpin_all(inst->rs);
}

/*
 * VFIO core: the user unmapped [@iova, @iova + @length) from the IOAS (or
 * container) the device is attached to; the device must not reach it once
 * this returns. No lock of ours held.
 */
static void vslice_vfio_dma_unmap(struct vfio_device *vdev, u64 iova, u64 length)
{
	struct vslice_shim_instance *inst =
		container_of(vdev, struct vslice_shim_instance, vdev);

	vslice_rs_instance_dma_unmap(inst->rs, iova, length);
}

/*
 * SET_IRQS on the REQ index, as vfio-pci's single-trigger indexes: EVENTFD
 * arms (fd -1 disarms), NONE with count 0 disarms, NONE or a true BOOL
 * with count 1 signals. vslice_ioctl_set_irqs() has checked that @data
 * holds @hdr->count entries and that count is 0 only with NONE.
 */
static int vslice_set_req(struct vslice_shim_instance *inst, struct vfio_irq_set *hdr,
			  const void *data)
{
	struct eventfd_ctx *ctx = NULL;
	s32 fd;

	lockdep_assert_held(&inst->igate);
	/* Only TRIGGER makes sense for REQ; vfio-pci says -ENOTTY too. */
	if (!(hdr->flags & VFIO_IRQ_SET_ACTION_TRIGGER))
		return -ENOTTY;
	if (hdr->flags & VFIO_IRQ_SET_DATA_EVENTFD) {
		fd = *(const s32 *)data;
		if (fd < -1)
			return -EINVAL;
		if (fd >= 0) {
			ctx = eventfd_ctx_fdget(fd);
			if (IS_ERR(ctx))
				return PTR_ERR(ctx);
		}
	} else if (hdr->count) {
		if (inst->req_trigger &&
		    (!(hdr->flags & VFIO_IRQ_SET_DATA_BOOL) || *(const u8 *)data))
			eventfd_signal(inst->req_trigger);
		return 0;
	}
	if (inst->req_trigger)
		eventfd_ctx_put(inst->req_trigger);
	inst->req_trigger = ctx;
	return 0;
}

/*
 * SET_IRQS on the MSI-X index. DATA_EVENTFD + TRIGGER assigns (fd >= 0)
 * or clears (-1) each vector, all or nothing (an fd below -1 is -EINVAL);
 * DATA_NONE + TRIGGER with count 0 clears them all, MASK/UNMASK with
 * count 0 is -EINVAL; NONE/BOOL with TRIGGER fire, with MASK/UNMASK mask
 * and unmask (an interrupt while masked is delivered on unmask).
 */
static int vslice_set_msix(struct vslice_shim_instance *inst, struct vfio_irq_set *hdr,
			   const void *data)
{
	u32 action = hdr->flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
	struct eventfd_ctx **ctxs;
	const s32 *fds = data;
	const u8 *bools = data;
	u32 i, h;
	int ret = 0;

	lockdep_assert_held(&inst->igate);
	if (!hdr->count) {
		if (action != VFIO_IRQ_SET_ACTION_TRIGGER)
			return -EINVAL;
		vslice_msix_teardown(inst);
		return 0;
	}
	ret = vslice_hw_vectors(inst, hdr->start, hdr->count, &h);
	if (ret)
		return ret;
	if (!(hdr->flags & VFIO_IRQ_SET_DATA_EVENTFD)) {
		for (i = 0; i < hdr->count; i++)
			if (!(hdr->flags & VFIO_IRQ_SET_DATA_BOOL) || bools[i])
				vslice_route_action(inst->sp, h + i, action);
		return 0;
	}
	if (action != VFIO_IRQ_SET_ACTION_TRIGGER)
		return -EINVAL;
	ctxs = kcalloc(hdr->count, sizeof(*ctxs), GFP_KERNEL);
	if (!ctxs)
		return -ENOMEM;
	for (i = 0; i < hdr->count; i++) {
		if (fds[i] < -1) {
			ret = -EINVAL;
			goto put;
		}
		if (fds[i] == -1)
			continue;
		ctxs[i] = eventfd_ctx_fdget(fds[i]);
		if (IS_ERR(ctxs[i])) {
			ret = PTR_ERR(ctxs[i]);
			ctxs[i] = NULL;
			goto put;
		}
	}
	for (i = 0; i < hdr->count; i++) {
		vslice_route_set(inst->sp, h + i, ctxs[i]);
		ctxs[i] = NULL;
	}
put:
	for (i = 0; i < hdr->count; i++)
		if (ctxs[i])
			eventfd_ctx_put(ctxs[i]);
	kfree(ctxs);
	return ret;
}

static long vslice_ioctl_set_irqs(struct vslice_shim_instance *inst, void __user *uarg)
{
	unsigned long minsz = offsetofend(struct vfio_irq_set, count);
	struct vfio_irq_set hdr;
	size_t data_size = 0;
	void *data = NULL;
	int ret;

	if (copy_from_user(&hdr, uarg, minsz))
		return -EFAULT;
	ret = vfio_set_irqs_validate_and_prepare(&hdr, hdr.index < VFIO_PCI_NUM_IRQS ?
						 vslice_irq_count(inst, hdr.index) : 0,
						 VFIO_PCI_NUM_IRQS, &data_size);
	if (ret)
		return ret;
	/* The core does not check that exactly one action is asked for. */
	if (hweight32(hdr.flags & VFIO_IRQ_SET_ACTION_TYPE_MASK) != 1)
		return -EINVAL;
	/*
	 * Count 0 means "disable" and carries no data: only NONE can say it.
	 * BOOL or EVENTFD with count 0 would leave @data NULL for a handler
	 * that reads its first entry.
	 */
	if (!hdr.count && !(hdr.flags & VFIO_IRQ_SET_DATA_NONE))
		return -EINVAL;
	if (data_size) {
		data = memdup_user(uarg + minsz, data_size);
		if (IS_ERR(data))
			return PTR_ERR(data);
	}
	mutex_lock(&inst->igate);
	if (hdr.index == VFIO_PCI_REQ_IRQ_INDEX)
		ret = vslice_set_req(inst, &hdr, data);
	else if (hdr.index == VFIO_PCI_MSIX_IRQ_INDEX)
		ret = vslice_set_msix(inst, &hdr, data);
	else
		ret = -EINVAL;
	mutex_unlock(&inst->igate);
	kfree(data);
	return ret;
}

/* VFIO core: ioctl on an open device fd; process context, no lock held. */
static long vslice_vfio_ioctl(struct vfio_device *vdev, unsigned int cmd, unsigned long arg)
{
	struct vslice_shim_instance *inst =
		container_of(vdev, struct vslice_shim_instance, vdev);
	void __user *uarg = (void __user *)arg;
	unsigned long minsz;
	int ret;

	switch (cmd) {
	case VFIO_DEVICE_GET_INFO: {
		struct vfio_device_info info;

		minsz = offsetofend(struct vfio_device_info, num_irqs);
		if (copy_from_user(&info, uarg, minsz))
			return -EFAULT;
		if (info.argsz < minsz)
			return -EINVAL;
		info.flags = VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET;
		info.num_regions = VFIO_PCI_NUM_REGIONS;
		info.num_irqs = VFIO_PCI_NUM_IRQS;
		return copy_to_user(uarg, &info, minsz) ? -EFAULT : 0;
	}
	case VFIO_DEVICE_GET_IRQ_INFO: {
		struct vfio_irq_info info;

		minsz = offsetofend(struct vfio_irq_info, count);
		if (copy_from_user(&info, uarg, minsz))
			return -EFAULT;
		if (info.argsz < minsz || info.index >= VFIO_PCI_NUM_IRQS)
			return -EINVAL;
		info.count = vslice_irq_count(inst, info.index);
		info.flags = info.count ? VFIO_IRQ_INFO_EVENTFD : 0;
		if (info.index == VFIO_PCI_MSIX_IRQ_INDEX)
			info.flags |= VFIO_IRQ_INFO_MASKABLE;
		return copy_to_user(uarg, &info, minsz) ? -EFAULT : 0;
	}
	case VFIO_DEVICE_SET_IRQS:
		return vslice_ioctl_set_irqs(inst, uarg);
	case VFIO_DEVICE_RESET:
		/*
		 * A function reset disables MSI-X: the routes go with it. The
		 * mapping is zapped, so that no access reaches VRAM while the
		 * contexts reset; faults map it again afterwards.
		 */
		mutex_lock(&inst->state_mutex);
		vslice_mig_reset(inst);
		mutex_lock(&inst->igate);
		vslice_msix_teardown(inst);
		down_write(&inst->memory_lock);
		vslice_zap_vram(inst);
		ret = vslice_rs_instance_reset(inst->rs);
		up_write(&inst->memory_lock);
		mutex_unlock(&inst->igate);
		mutex_unlock(&inst->state_mutex);
		/* A reset function holds no DMA: pins go, outside memory_lock. */
		vslice_rs_instance_unpin_all(inst->rs);
		return ret;
	default:
		return -ENOTTY;
	}
}

/* VFIO core: VFIO_DEVICE_GET_REGION_INFO (the core copies in and out). */
static int vslice_vfio_region_info(struct vfio_device *vdev, struct vfio_region_info *info,
				   struct vfio_info_cap *caps)
{
	struct vslice_shim_instance *inst =
		container_of(vdev, struct vslice_shim_instance, vdev);
	struct vslice_region_info ri;
	int ret;

	ret = vslice_rs_region_info(inst->rs, info->index, &ri);
	if (ret)
		return ret;
	info->offset = vslice_region_pos(info->index, 0);
	info->size = ri.size;
	info->flags = ri.flags;
	return 0;
}

static_assert(VSLICE_REGION_READ == VFIO_REGION_INFO_FLAG_READ);
static_assert(VSLICE_REGION_WRITE == VFIO_REGION_INFO_FLAG_WRITE);
static_assert(VSLICE_REGION_MMAP == VFIO_REGION_INFO_FLAG_MMAP);
static_assert(VSLICE_NUM_REGIONS == VFIO_PCI_NUM_REGIONS);

#define VSLICE_RW_STACK 64

/*
 * One piece of a region access, under memory_lock: shared for accesses
 * that cannot change whether the BARs decode, exclusive for config
 * writes, which can (the command register), and zap the mapping if they
 * stopped it.
 */
static s64 vslice_region_rw_locked(struct vslice_shim_instance *inst, u32 index,
				   u64 off, u8 *buf, u32 len, bool write)
{
	s64 n;

	if (write && index == VFIO_PCI_CONFIG_REGION_INDEX) {
		down_write(&inst->memory_lock);
		n = vslice_rs_region_rw(inst->rs, index, off, buf, len, write);
		if (!vslice_rs_instance_decodes(inst->rs))
			vslice_zap_vram(inst);
		up_write(&inst->memory_lock);
		return n;
	}
	down_read(&inst->memory_lock);
	n = vslice_rs_region_rw(inst->rs, index, off, buf, len, write);
	up_read(&inst->memory_lock);
	return n;
}

/*
 * VFIO core: read() or write() on the device fd, pread/pwrite style: the
 * region is the offset's top bits (vfio-pci encoding). Rust does each
 * piece; this copies to and from user space through a bounce buffer.
 */
static ssize_t vslice_vfio_rw(struct vfio_device *vdev, char __user *ubuf,
			      size_t count, loff_t *ppos, bool write)
{
	struct vslice_shim_instance *inst =
		container_of(vdev, struct vslice_shim_instance, vdev);
	u32 index = vslice_region_index(*ppos);
	u64 off = vslice_region_offset(*ppos);
	u8 stackbuf[VSLICE_RW_STACK], *buf = stackbuf;
	size_t bufsz = sizeof(stackbuf), done = 0;
	ssize_t n = 0;

	if (index >= VFIO_PCI_NUM_REGIONS)
		return -EINVAL;
	if (count > bufsz) {
		bufsz = min_t(size_t, count, PAGE_SIZE);
		buf = kmalloc(bufsz, GFP_KERNEL);
		if (!buf)
			return -ENOMEM;
	}
	while (done < count) {
		u32 len = min(count - done, bufsz);

		if (write && copy_from_user(buf, ubuf + done, len)) {
			n = -EFAULT;
			break;
		}
		n = vslice_region_rw_locked(inst, index, off + done, buf, len, write);
		if (n <= 0)
			break;
		if (!write && copy_to_user(ubuf + done, buf, n)) {
			n = -EFAULT;
			break;
		}
		done += n;
		if (n < len)
			break;
	}
	if (buf != stackbuf)
		kfree(buf);
	if (!done)
		return n;
	*ppos += done;
	return done;
}

static ssize_t vslice_vfio_read(struct vfio_device *vdev, char __user *buf,
				size_t count, loff_t *ppos)
{
	return vslice_vfio_rw(vdev, buf, count, ppos, false);
}

static ssize_t vslice_vfio_write(struct vfio_device *vdev, const char __user *buf,
				 size_t count, loff_t *ppos)
{
	return vslice_vfio_rw(vdev, (char __user *)buf, count, ppos, true);
}

/*
 * Pages a fault maps at once: the 2 MiB-aligned window around it (inside
 * the VMA), so that streaming through a slice faults once per window
 * rather than once per page.
 */
#define VSLICE_FAULT_WINDOW SZ_2M

/* Slice offset of the page at @addr of a VRAM mapping. */
static u64 vslice_vma_off(struct vm_area_struct *vma, unsigned long addr)
{
	return vslice_region_offset((u64)vma->vm_pgoff << PAGE_SHIFT) + (addr - vma->vm_start);
}

/*
 * A fault on a VRAM mapping (mmap_lock held). Rust says whether the BARs
 * decode and where the page is; SIGBUS while they do not. The mapping has
 * a pfn_mkwrite, so the VMA's own protection is read-only (the kernel
 * wants write notification): pages go in writable unless Rust logs CPU
 * writes (pre-copy), when only a written page does, after it is logged.
 */
static vm_fault_t vslice_vm_fault(struct vm_fault *vmf)
{
	struct vm_area_struct *vma = vmf->vma;
	struct vslice_shim_instance *inst = vma->vm_private_data;
	unsigned long addr = vmf->address & PAGE_MASK;
	unsigned long start = max(ALIGN_DOWN(addr, VSLICE_FAULT_WINDOW), vma->vm_start);
	unsigned long end = min(ALIGN_DOWN(addr, VSLICE_FAULT_WINDOW) + VSLICE_FAULT_WINDOW,
				vma->vm_end);
	bool write = vmf->flags & FAULT_FLAG_WRITE;
	pgprot_t rw, ro = vma->vm_page_prot;
	unsigned long a;
	vm_fault_t ret;
	u32 wp = 0;
	u64 phys;

	rw = pgprot_decrypted(pgprot_noncached(vm_get_page_prot(vma->vm_flags)));
	down_read(&inst->memory_lock);
	if (vslice_rs_mmap_fault(inst->rs, vslice_vma_off(vma, addr), write, &phys, &wp)) {
		ret = VM_FAULT_SIGBUS;
		goto out;
	}
	ret = vmf_insert_pfn_prot(vma, addr, PHYS_PFN(phys), wp && !write ? ro : rw);
	if (ret & VM_FAULT_ERROR)
		goto out;
	/* The rest of the window (start <= addr), best effort. */
	phys -= addr - start;
	for (a = start; a < end; a += PAGE_SIZE) {
		if (a == addr)
			continue;
		if (vmf_insert_pfn_prot(vma, a, PHYS_PFN(phys + (a - start)), wp ? ro : rw) &
		    VM_FAULT_ERROR)
			break;
	}
out:
	up_read(&inst->memory_lock);
	return ret;
}

/* A write to a page mapped read-only: Rust logs it, the kernel then allows it. */
static vm_fault_t vslice_vm_pfn_mkwrite(struct vm_fault *vmf)
{
	struct vm_area_struct *vma = vmf->vma;
	struct vslice_shim_instance *inst = vma->vm_private_data;

	down_read(&inst->memory_lock);
	vslice_rs_mmap_mkwrite(inst->rs, vslice_vma_off(vma, vmf->address & PAGE_MASK));
	up_read(&inst->memory_lock);
	return 0;
}

static const struct vm_operations_struct vslice_vm_ops = {
	.fault = vslice_vm_fault,
	.pfn_mkwrite = vslice_vm_pfn_mkwrite,
};

/*
 * VFIO core: mmap of the device fd. Only the VRAM slice maps (Rust checks
 * region, offset and length), straight to the device's BAR: no trap per
 * access. Pages come in on fault, so that the driver can take them away
 * (vslice_zap_vram) when the BARs stop decoding. The mapping holds the
 * file, so unbind waits for munmap too.
 */
static int vslice_vfio_mmap(struct vfio_device *vdev, struct vm_area_struct *vma)
{
	struct vslice_shim_instance *inst =
		container_of(vdev, struct vslice_shim_instance, vdev);
	u64 pos = (u64)vma->vm_pgoff << PAGE_SHIFT;
	u64 len = vma->vm_end - vma->vm_start;
	int ret;

	if (!(vma->vm_flags & VM_SHARED))
		return -EINVAL;
	if (vma->vm_pgoff > (U64_MAX >> PAGE_SHIFT))
		return -EINVAL;
	ret = vslice_rs_mmap_check(inst->rs, vslice_region_index(pos),
				   vslice_region_offset(pos), len);
	if (ret)
		return ret;
	vma->vm_private_data = inst;
	/* The attributes io_remap_pfn_range() would give (vfio-pci does so). */
	vma->vm_page_prot = pgprot_noncached(vma->vm_page_prot);
	vma->vm_page_prot = pgprot_decrypted(vma->vm_page_prot);
	vm_flags_set(vma, VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP);
	vma->vm_ops = &vslice_vm_ops;
	return 0;
}

static const struct vfio_device_ops vslice_vfio_ops = {
	.name = "vslice",
	.release = vslice_vfio_release,
	.open_device = vslice_vfio_open_device,
	.close_device = vslice_vfio_close_device,
	.read = vslice_vfio_read,
	.write = vslice_vfio_write,
	.ioctl = vslice_vfio_ioctl,
	.get_region_info_caps = vslice_vfio_region_info,
	.mmap = vslice_vfio_mmap,
	.request = vslice_vfio_request,
	.dma_unmap = vslice_vfio_dma_unmap,
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
	atomic_inc(&vslice_live_vdevs);
	inst->sp = sp;
	mutex_init(&inst->igate);
	init_rwsem(&inst->memory_lock);
	mutex_init(&inst->state_mutex);
	inst->mig_state = VFIO_DEVICE_STATE_RUNNING;
	inst->vdev.migration_flags = VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P |
				     VFIO_MIGRATION_PRE_COPY;
	inst->vdev.mig_ops = &vslice_mig_ops;
	/* Without the kernel's iova_bitmap a report could set no bit: none offered. */
	if (IS_ENABLED(CONFIG_IOMMUFD_DRIVER))
		inst->vdev.log_ops = &vslice_log_ops;
	ret = vslice_rs_instance_create(sp->rs, t->index, inst, &inst->rs);
	if (ret)
		goto put;
	/* On the list before a user can open it: its faults get answered. */
	mutex_lock(&sp->inst_lock);
	list_add(&inst->node, &sp->instances);
	mutex_unlock(&sp->inst_lock);
	ret = vfio_register_emulated_iommu_dev(&inst->vdev);
	if (ret) {
		dev_err(&mdev->dev, "cannot register the VFIO device: %d\n", ret);
		mutex_lock(&sp->inst_lock);
		list_del(&inst->node);
		mutex_unlock(&sp->inst_lock);
		goto put;
	}
	dev_set_drvdata(&mdev->dev, inst);
	up_read(&sp->rwsem);
	return 0;
put:
	vfio_put_device(&inst->vdev);
	/* Its release gave back what it carved. */
	vslice_scrub_kick(sp, false);
out:
	up_read(&sp->rwsem);
	return ret;
}

/*
 * mdev core: child remove (sysfs remove, or parent unregistration), with
 * the core's unreg_sem held. Waits for the instance's users to close. It
 * takes no rwsem: parent removal holds that exclusive while the core
 * removes every child; Rust returns the capacity under its own mutex.
 */
static void vslice_mdev_remove(struct mdev_device *mdev)
{
	struct vslice_shim_instance *inst = dev_get_drvdata(&mdev->dev);

	vfio_unregister_group_dev(&inst->vdev);
	mutex_lock(&inst->sp->inst_lock);
	list_del(&inst->node);
	mutex_unlock(&inst->sp->inst_lock);
	vslice_rs_instance_remove(inst->rs);
	vslice_scrub_kick(inst->sp, false);
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

	return sysfs_emit(buf, "%llu MiB VRAM, %u context%s, %u MSI-X vector%s\n",
			  t->info.vram_bytes >> 20, t->info.contexts,
			  t->info.contexts == 1 ? "" : "s", t->info.vectors,
			  t->info.vectors == 1 ? "" : "s");
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
	mutex_destroy(&sp->inst_lock);
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
	mutex_init(&sp->inst_lock);
	mutex_init(&sp->vec_lock);
	INIT_LIST_HEAD(&sp->instances);
	INIT_WORK(&sp->fatal_work, vslice_fatal_work);
	INIT_WORK(&sp->xlate_work, vslice_xlate_work);
	INIT_DELAYED_WORK(&sp->scrub_work, vslice_scrub_work);
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
	/* The IRQs exist by now: a self-test from here on gets its interrupt. */
	sp->dir = debugfs_create_dir(pci_name(sp->pdev), vslice_debugfs_root);
	debugfs_create_file("state", 0444, sp->dir, sp, &vslice_state_fops);
	debugfs_create_file("selftest", 0200, sp->dir, sp, &vslice_selftest_fops);
	debugfs_create_file("scrub_hold", 0200, sp->dir, sp, &vslice_scrub_hold_fops);
	/* The VRAM of a device just bound is zeroed before anyone gets it. */
	vslice_scrub_kick(sp, true);
	ret = mdev_register_parent(&sp->parent, &sp->dev, &vslice_mdev_driver,
				   sp->type_ptrs, sp->ntypes);
	if (!ret)
		sp->registered = true;
	return ret;
}

/*
 * Called from the Rust unbind path (and on a failed probe). The removal
 * protocol of rust-driver/parent.rs, in order: drain and exclude every
 * parent-level operation (rwsem exclusive, held until the device is
 * quiesced), mark Removing, remove every child, quiesce, free IRQs and
 * stop the fatal-error work, drop debugfs and the device. Creates and
 * self-tests only ever trylock the rwsem, so holding it across
 * mdev_unregister_parent() cannot deadlock with them; child remove and
 * the VFIO callbacks do not take it.
 */
void vslice_shim_parent_remove(struct vslice_shim_parent *sp)
{
	down_write(&sp->rwsem);
	vslice_rs_parent_removing(sp->rs);
	if (sp->registered)
		mdev_unregister_parent(&sp->parent);
	vslice_rs_parent_quiesce(sp->rs);
	up_write(&sp->rwsem);
	vslice_shim_irqs_free(sp);
	/* No handler can queue them any more; no kick either (not Live). */
	cancel_work_sync(&sp->fatal_work);
	cancel_work_sync(&sp->xlate_work);
	cancel_delayed_work_sync(&sp->scrub_work);
	debugfs_remove(sp->dir);
	device_unregister(&sp->dev);
}

/* ---- module ---------------------------------------------------------------- */

static DEFINE_RATELIMIT_STATE(vslice_err_rs, DEFAULT_RATELIMIT_INTERVAL,
			      DEFAULT_RATELIMIT_BURST);

/* Called from Rust before logging an error a user can repeat at will. */
int vslice_shim_err_ratelimit(void)
{
	return __ratelimit(&vslice_err_rs);
}

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
	debugfs_create_file("stats", 0444, vslice_debugfs_root, NULL, &vslice_stats_fops);
	return 0;
}

/*
 * Called from the Rust module exit, after the PCI driver unregistered:
 * waits until every parent device and every VFIO device was released
 * (their release code is in this module).
 */
void vslice_shim_exit(void)
{
	wait_var_event(&vslice_live_parents, !atomic_read(&vslice_live_parents));
	wait_var_event(&vslice_live_vdevs, !atomic_read(&vslice_live_vdevs));
	debugfs_remove(vslice_debugfs_root);
	mdev_unregister_driver(&vslice_mdev_driver);
	class_unregister(&vslice_class);
}
