/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vslice_shim.h - the one seam between the C shim and the Rust driver.
 *
 * bindgen turns this header into Rust at build time (see Kbuild), so it
 * must stay self-contained: opaque handles, fixed-size integers and plain
 * structs only. vslice_shim_*() are implemented in C and called from Rust;
 * vslice_rs_*() are implemented in Rust and called from C. The lifecycle
 * protocol they implement is written at the top of rust-driver/parent.rs.
 */
#ifndef VSLICE_SHIM_H
#define VSLICE_SHIM_H

#ifdef __BINDGEN__
/* No kernel headers for bindgen: spell the types out. */
#define u8 unsigned char
#define u32 unsigned int
#define u64 unsigned long long
#define s64 long long
#else
#include <linux/types.h>
#endif

#define VSLICE_MAX_TYPES 8

struct pci_dev;
/* Rust-owned parent state; C holds one counted reference to it. */
struct vslice_rs_parent;
/* Rust-owned instance state; C owns the pointer until release. */
struct vslice_rs_instance;
/* C-owned per-parent state: rwsem, mdev parent and types, IRQs, debugfs. */
struct vslice_shim_parent;
/* C-owned per-instance state: the VFIO device, its locks and eventfds. */
struct vslice_shim_instance;
/* Rust-owned migration stream of one instance (rust-driver/migrate.rs). */
struct vslice_rs_stream;

enum vslice_parent_state {
	VSLICE_PARENT_LIVE = 0,
	VSLICE_PARENT_REMOVING = 1,
	VSLICE_PARENT_GONE = 2,
};

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
	/* The last self-test's DMA pass: bytes each way, ns each way. */
	u64 selftest_dma_bytes;
	u64 selftest_dma_in_ns;
	u64 selftest_dma_out_ns;
	u32 state;
	u32 instances;
	/* VRAM units: how many, which are used, how many wait for a scrub. */
	u32 units;
	u64 units_used[4];
	u32 units_dirty;
	u32 units_bad;
	u32 scrubs_pending;
	u32 free_contexts;
	u64 unit_bytes;
	/* REG_ID read now: all-ones when the device does not answer */
	u32 live_id;
	u32 fatal_errors;
};

/* Module-wide object counts (debugfs vslice/stats): made - released = alive. */
struct vslice_stats {
	u64 instances_made;
	u64 instances_released;
	u64 parents_made;
	u64 parents_released;
	/* VRAM mapping faults served (each maps the pages around it). */
	u64 mmap_faults;
	/* Tenant pages pinned for the device's DMA right now. */
	u64 pinned_pages;
	/* Translation faults the driver answered, and how. */
	u64 dma_faults_resolved;
	u64 dma_faults_refused;
	/* Creates that succeeded; ns in the driver, of it waiting for scrubs. */
	u64 creates;
	u64 create_ns;
	u64 create_wait_ns;
	/* Removes; ns in the driver. */
	u64 removes;
	u64 remove_ns;
	/* Contexts programmed at an instance's first open; ns doing it. */
	u64 programs;
	u64 program_ns;
	/* Scrubs done (ns from release to zeroed), and failed. */
	u64 scrubs;
	u64 scrub_ns;
	u64 scrub_failures;
	/* Bytes the driver holds for its instances (not the device model's). */
	u64 driver_bytes;
	/* Jobs loaded migration states carried; of them, resumed part-done. */
	u64 mig_jobs_moved;
	u64 mig_jobs_resumed;
};

/* One instance type, as Rust defines it. */
struct vslice_type_info {
	char name[16];
	char pretty[32];
	u64 vram_bytes;
	u32 contexts;
	u32 vectors;
};

/* One live instance, for debugfs. */
struct vslice_instance_info {
	u32 id;
	u32 type;
	u64 vram_base;
	u64 vram_size;
	u32 first_context;
	u32 contexts;
};

/*
 * An instance's VFIO regions, vfio-pci layout (index << 40 in the fd).
 * The flag values are the uapi's VFIO_REGION_INFO_FLAG_*; the shim checks.
 */
#define VSLICE_NUM_REGIONS 9
#define VSLICE_REGION_READ 1
#define VSLICE_REGION_WRITE 2
#define VSLICE_REGION_MMAP 4
struct vslice_region_info {
	u64 size;
	u32 flags;
};

/* What an interrupt was: vslice_rs_irq()'s return value. */
enum vslice_irq_kind {
	VSLICE_IRQ_NONE = 0,
	VSLICE_IRQ_HANDLED = 1,
	/* The vector's context belongs to an instance: signal its eventfd. */
	VSLICE_IRQ_ROUTE = 2,
	/* The device reported a fatal error: cut every instance off. */
	VSLICE_IRQ_FATAL = 3,
	/* Contexts wait on translation faults: resolve them (sleeps). */
	VSLICE_IRQ_XLATE = 4,
	/* A scrub's jobs completed or failed: run the scrub work. */
	VSLICE_IRQ_SCRUB = 5,
};

/* Implemented in C, called from Rust. */
int vslice_shim_init(void);
void vslice_shim_exit(void);
int vslice_shim_parent_add(struct pci_dev *pdev,
			   const struct vslice_rs_parent *rs,
			   struct vslice_shim_parent **out);
int vslice_shim_irqs_enable(struct vslice_shim_parent *sp, u32 nvec);
/* Makes MSI-X vector @h ready to be raised (idempotent; sleeps). */
int vslice_shim_irq_use(struct vslice_shim_parent *sp, u32 h);
int vslice_shim_parent_register(struct vslice_shim_parent *sp);
void vslice_shim_parent_remove(struct vslice_shim_parent *sp);
/*
 * 1 if an error a user can provoke in a loop may be logged now, 0 if the
 * module's rate limit says not (the kernel's default interval and burst).
 */
int vslice_shim_err_ratelimit(void);
/*
 * DMA plumbing, process context, called by Rust (rust-driver/dma.rs)
 * without an instance's translation mutex held for pin and unpin. @len
 * zeroed, coherent bytes of @pdev's (translation tables, the self-test's
 * buffers, dirty bitmaps): the CPU address, and the bus address in *@dma;
 * NULL without memory.
 */
void *vslice_shim_coherent_alloc(struct pci_dev *pdev, u64 len, u64 *dma);
void vslice_shim_coherent_free(struct pci_dev *pdev, u64 len, void *cpu, u64 dma);
/*
 * Pins the tenant's page at IOVA @iova (readable; writable too if @write)
 * through the VFIO core and maps it for the parent's DMA: its bus address
 * in *@dma. 0 or a negative errno (-EINVAL/-EFAULT: not mapped so).
 */
int vslice_shim_pin(struct vslice_shim_instance *si, u64 iova, u32 write, u64 *dma);
/* Undoes vslice_shim_pin() of the page at @iova. */
void vslice_shim_unpin(struct vslice_shim_instance *si, u64 iova, u64 dma, u32 write);

/*
 * Write-protects the instance's VRAM mapping and collects the CPU write
 * log (zap, then vslice_rs_cpu_log_rotate(), both under memory_lock held
 * exclusive, so that no write is logged and then missed): the next CPU
 * write to each page faults and is logged. Called from the migration
 * paths with no lock of the shim's but state_mutex or a data file's lock.
 */
void vslice_shim_vram_wp(struct vslice_shim_instance *si);
/* DMA logging: [@iova, @iova + @len) is dirty in report bitmap @dirty. */
void vslice_shim_log_dirty(void *dirty, u64 iova, u64 len);
/* CRC-32C of @len bytes at @buf, continuing from @crc (the stream's check). */
u32 vslice_shim_crc32c(u32 crc, const u8 *buf, u64 len);

/* Implemented in Rust, called from C. */
void vslice_rs_stats(struct vslice_stats *out);
void vslice_rs_parent_info(const struct vslice_rs_parent *rs,
			   struct vslice_parent_info *info);
int vslice_rs_instance_info(const struct vslice_rs_parent *rs, u32 index,
			    struct vslice_instance_info *info);
int vslice_rs_type_info(const struct vslice_rs_parent *rs, u32 index,
			struct vslice_type_info *info);
u32 vslice_rs_available(const struct vslice_rs_parent *rs, u32 type);
int vslice_rs_instance_create(const struct vslice_rs_parent *rs, u32 type,
			      struct vslice_shim_instance *si,
			      struct vslice_rs_instance **out);
void vslice_rs_instance_remove(struct vslice_rs_instance *inst);
/*
 * The instance's VFIO device, process context. Locks the shim holds:
 * vectors under igate (or none, for IRQ info); region_rw under the
 * instance's memory_lock; mmap_fault under the mm's mmap_lock and
 * memory_lock; revoke, fail and reset (VFIO_DEVICE_RESET) under
 * memory_lock held exclusive (reset on open and last close: none, no
 * mapping exists then and it only turns decoding on).
 */
/*
 * MSI-X vectors the instance exposes (one per context it owns); *@first is
 * the device's vector behind the instance's vector 0, the rest follow it.
 */
u32 vslice_rs_instance_vectors(const struct vslice_rs_instance *inst,
			       u32 *first);
int vslice_rs_region_info(const struct vslice_rs_instance *inst, u32 index,
			  struct vslice_region_info *info);
/* @len bytes at @off of region @index to/from kernel @buf; bytes done. */
s64 vslice_rs_region_rw(const struct vslice_rs_instance *inst, u32 index,
			u64 off, u8 *buf, u32 len, u32 write);
/* mmap of @len bytes at @off of region @index: 0 if it may map at all. */
int vslice_rs_mmap_check(const struct vslice_rs_instance *inst, u32 index,
			 u64 off, u64 len);
/*
 * A fault at VRAM slice offset @off (a write if @write), memory_lock held
 * shared: the physical address to map there, or -EIO while the BARs do
 * not decode. *@wp is 1 while CPU writes are being logged: map the page
 * read-only unless this is a write (which is logged).
 */
int vslice_rs_mmap_fault(const struct vslice_rs_instance *inst, u64 off,
			 u32 write, u64 *phys, u32 *wp);
/*
 * A write to a read-only mapped VRAM page at slice offset @off, memory_lock
 * held shared: logged.
 */
void vslice_rs_mmap_mkwrite(const struct vslice_rs_instance *inst, u64 off);
/*
 * Pre-copy: the pages CPU writes were logged for until now become the
 * saving stream's to send; memory_lock held exclusive, the mapping zapped.
 */
void vslice_rs_cpu_log_rotate(const struct vslice_rs_instance *inst);
/* 1 while the BARs decode (memory on, not revoked or failed), else 0. */
u32 vslice_rs_instance_decodes(const struct vslice_rs_instance *inst);
/* Taken from a user who ignored REQ: BARs stop answering, for good. */
void vslice_rs_instance_revoke(const struct vslice_rs_instance *inst);
/* The device had a fatal error: BARs stop answering until a reset. */
void vslice_rs_instance_fail(const struct vslice_rs_instance *inst);
int vslice_rs_instance_reset(const struct vslice_rs_instance *inst);
void vslice_rs_instance_release(struct vslice_rs_instance *inst);
/*
 * The instance's DMA translation, process context, no lock of the shim's
 * held but inst_lock (rust-driver/dma.rs has the rules): answer the
 * translation faults its contexts wait on; drop (invalidate, then unpin)
 * what lies in [@iova, @iova + @len), the VFIO core's dma_unmap; drop
 * everything (after a reset stopped the contexts, outside memory_lock:
 * unpinning takes the IOMMU back end's locks).
 */
void vslice_rs_instance_faults(const struct vslice_rs_instance *inst);
void vslice_rs_instance_dma_unmap(const struct vslice_rs_instance *inst, u64 iova, u64 len);
void vslice_rs_instance_unpin_all(const struct vslice_rs_instance *inst);
void vslice_rs_parent_removing(const struct vslice_rs_parent *rs);
void vslice_rs_parent_quiesce(const struct vslice_rs_parent *rs);
void vslice_rs_parent_put(const struct vslice_rs_parent *rs);
/* Hard-IRQ context: MSI-X vector @vector fired; an enum vslice_irq_kind. */
int vslice_rs_irq(const struct vslice_rs_parent *rs, u32 vector);
/* Process context (debugfs write): run the device self-test. */
int vslice_rs_selftest(const struct vslice_rs_parent *rs, u64 dma_len);
/*
 * The scrub work (process context): advance the VRAM scrubs; returns the
 * milliseconds after which to run again, 0 if no scrub runs. wanted: 0
 * unless a scrub is queued and the parent is live; then the window (ms)
 * within which a release's scrub starts, so that releases close together
 * are scrubbed as one.
 */
u32 vslice_rs_scrub_work(const struct vslice_rs_parent *rs);
u32 vslice_rs_scrub_wanted(const struct vslice_rs_parent *rs);
/* debugfs scrub_hold: queued scrubs wait while @on (for tests). */
void vslice_rs_scrub_hold(const struct vslice_rs_parent *rs, u32 on);

/*
 * Migration (VFIO migration v2), process context. The shim walks the FSM
 * with vfio_mig_get_next_state() under the instance's state_mutex and
 * calls these for the arcs' work; a stream belongs to one data file and
 * is used under that file's lock (rust-driver/migrate.rs has the format).
 * freeze: stop (1) or restart (0) every context of the instance (the
 * P2P arcs). save: a saving stream, dirty logging on if @precopy.
 * stop_copy: the stream's pre-copy phase ends (the contexts are frozen).
 * read: up to @len stream bytes into @buf; 0 at the end, -ENOMSG at
 * pre-copy's temporary end. precopy_info: VFIO_MIG_GET_PRECOPY_INFO.
 * resume: a resuming stream. write: @len bytes of it. load: validate
 * what was written and put it into the instance (memory_lock held
 * exclusive). data_size: a STOP_COPY stream's length from now, given
 * the saving stream @st if there is one (its file's lock held).
 */
int vslice_rs_mig_freeze(const struct vslice_rs_instance *inst, u32 freeze);
int vslice_rs_mig_save(const struct vslice_rs_instance *inst, u32 precopy,
		       struct vslice_rs_stream **out);
int vslice_rs_mig_stop_copy(struct vslice_rs_stream *st);
s64 vslice_rs_mig_read(struct vslice_rs_stream *st, u8 *buf, u32 len);
int vslice_rs_mig_precopy_info(struct vslice_rs_stream *st, u64 *initial, u64 *dirty);
int vslice_rs_mig_resume(const struct vslice_rs_instance *inst,
			 struct vslice_rs_stream **out);
s64 vslice_rs_mig_write(struct vslice_rs_stream *st, const u8 *buf, u32 len);
int vslice_rs_mig_load(struct vslice_rs_stream *st);
void vslice_rs_mig_free(struct vslice_rs_stream *st);
u64 vslice_rs_mig_data_size(const struct vslice_rs_instance *inst,
			    struct vslice_rs_stream *st);
/*
 * VFIO DMA logging (log_ops), process context, no lock of the shim's
 * held: start (1) or stop (0); report the pages the device may have
 * written in [@iova, @iova + @len) into @dirty (an iova_bitmap) through
 * vslice_shim_log_dirty().
 */
void vslice_rs_dma_log(const struct vslice_rs_instance *inst, u32 on);
void vslice_rs_dma_log_report(const struct vslice_rs_instance *inst, u64 iova, u64 len,
			      void *dirty);

#endif /* VSLICE_SHIM_H */
