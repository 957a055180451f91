// SPDX-License-Identifier: GPL-2.0-only
/*
 * vslice driver for the VFIO selftests (tools/testing/selftests/vfio): a
 * vslice mdev instance as the device under test. The instance's context 0
 * runs the jobs: memcpy is OP_DMA_COPY descriptors on IOVAs of the IOAS the
 * tests map, send_msi a NOP descriptor that interrupts on the instance's
 * MSI-X vector 0. Job errors (a copy from an unmapped IOVA) halt the
 * context and are reported by memcpy_wait(), never by an interrupt: the
 * context's error cause stays masked.
 *
 * Registers (BAR0) are trapped, so they are read and written through the
 * device fd; descriptors go into the ring in VRAM (BAR2, mmap'd by the
 * library). Register names come from vslice_regs.h, generated from the
 * device's register map (regs/vslice_regs.rs).
 */
#include <unistd.h>

#include <libvfio.h>

#include "vslice_regs.h"

/* Ring slots used: the rest of the 4096 the device takes stay unused. */
#define VSLICE_SLOTS		256
#define VSLICE_MAX_MEMCPY	(1UL << 20)
/* How long memcpy_wait() waits for the device, in 1 ms polls. */
#define VSLICE_WAIT_MS		60000

struct vslice_state {
	u32 tail;
};

static struct vslice_state *to_vslice_state(struct vfio_pci_device *device)
{
	return device->driver.region.vaddr;
}

static u32 vslice_ctx0(u32 reg)
{
	return VSLICE_CTX_BASE + reg;
}

static u32 vslice_read(struct vfio_pci_device *device, u32 off)
{
	u32 v;

	VFIO_ASSERT_EQ(pread(device->fd, &v, 4, device->bars[0].info.offset + off), 4);
	return v;
}

static void vslice_write(struct vfio_pci_device *device, u32 off, u32 v)
{
	VFIO_ASSERT_EQ(pwrite(device->fd, &v, 4, device->bars[0].info.offset + off), 4);
}

static int vslice_probe(struct vfio_pci_device *device)
{
	if (!vfio_pci_device_match(device, VSLICE_PCI_VENDOR_ID, VSLICE_PCI_INSTANCE_DEVICE_ID))
		return -EINVAL;
	if (vslice_read(device, VSLICE_REG_ID) != VSLICE_DEVICE_ID_MAGIC)
		return -EINVAL;
	if (!device->bars[VSLICE_BAR_VRAM].vaddr)
		return -EINVAL;
	return 0;
}

/* Writes descriptor @op at the ring's tail (no doorbell yet). */
static void vslice_queue(struct vfio_pci_device *device, u32 op, u32 flags,
			 iova_t src, iova_t dst, u32 len)
{
	struct vslice_state *s = to_vslice_state(device);
	u8 *d = (u8 *)device->bars[VSLICE_BAR_VRAM].vaddr +
		(s->tail % VSLICE_SLOTS) * VSLICE_DESC_SIZE;

	*(volatile u32 *)(d + VSLICE_DESC_OPCODE) = op;
	*(volatile u32 *)(d + VSLICE_DESC_FLAGS) = flags;
	*(volatile u64 *)(d + VSLICE_DESC_SRC) = src;
	*(volatile u64 *)(d + VSLICE_DESC_DST) = dst;
	*(volatile u32 *)(d + VSLICE_DESC_LEN) = len;
	*(volatile u32 *)(d + VSLICE_DESC_VALUE) = 0;
	*(volatile u32 *)(d + VSLICE_DESC_STATUS) = 0;
	s->tail++;
}

static void vslice_kick(struct vfio_pci_device *device)
{
	vslice_write(device, vslice_ctx0(VSLICE_CTX_RING_TAIL), to_vslice_state(device)->tail);
	vslice_write(device, vslice_ctx0(VSLICE_CTX_DOORBELL), 1);
}

static void vslice_init(struct vfio_pci_device *device)
{
	struct vslice_state *s = to_vslice_state(device);

	VFIO_ASSERT_GE(device->driver.region.size, sizeof(*s));
	vfio_pci_cmd_set(device, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);

	/* Ring at slice offset 0; errors never interrupt; none pending. */
	vslice_write(device, vslice_ctx0(VSLICE_CTX_IRQ_MASK), VSLICE_CTX_IRQ_ERROR);
	vslice_write(device, vslice_ctx0(VSLICE_CTX_ERROR), 0);
	vslice_write(device, vslice_ctx0(VSLICE_CTX_RING_BASE_LO), 0);
	vslice_write(device, vslice_ctx0(VSLICE_CTX_RING_BASE_HI), 0);
	vslice_write(device, vslice_ctx0(VSLICE_CTX_RING_SIZE), VSLICE_SLOTS);
	s->tail = vslice_read(device, vslice_ctx0(VSLICE_CTX_RING_HEAD));
	vslice_write(device, vslice_ctx0(VSLICE_CTX_RING_TAIL), s->tail);
	vslice_write(device, vslice_ctx0(VSLICE_CTX_IRQ_STATUS), ~0U);

	vfio_pci_msix_enable(device, 0, 1);
	device->driver.msi = 0;
	device->driver.max_memcpy_size = VSLICE_MAX_MEMCPY;
	device->driver.max_memcpy_count = VSLICE_SLOTS - 1;
}

static void vslice_remove(struct vfio_pci_device *device)
{
	vfio_pci_msix_disable(device);
}

static void vslice_memcpy_start(struct vfio_pci_device *device,
				iova_t src, iova_t dst, u64 size, u64 count)
{
	u64 i;

	VFIO_ASSERT_LE(size, VSLICE_MAX_MEMCPY);
	VFIO_ASSERT_LT(count, VSLICE_SLOTS);
	for (i = 0; i < count; i++)
		vslice_queue(device, VSLICE_OP_DMA_COPY, 0, src, dst, size);
	vslice_kick(device);
}

/*
 * Until the ring is empty: a job error halts the context, it is noted and
 * cleared (the device goes on with the next descriptor). Non-0 if any job
 * failed or the device did not finish.
 */
static int vslice_memcpy_wait(struct vfio_pci_device *device)
{
	u32 tail = to_vslice_state(device)->tail;
	int errors = 0;
	u32 status, err;
	int ms;

	for (ms = 0; ms < VSLICE_WAIT_MS; ms++) {
		status = vslice_read(device, vslice_ctx0(VSLICE_CTX_STATUS));
		if (status == ~0U) {
			dev_err(device, "vslice: the device does not answer\n");
			return -1;
		}
		if (status & VSLICE_CTX_STATUS_HALTED) {
			err = vslice_read(device, vslice_ctx0(VSLICE_CTX_ERROR));
			dev_info(device, "vslice: job failed, error %u\n", err);
			vslice_write(device, vslice_ctx0(VSLICE_CTX_ERROR), 0);
			errors++;
			continue;
		}
		if (vslice_read(device, vslice_ctx0(VSLICE_CTX_RING_HEAD)) == tail &&
		    !(status & VSLICE_CTX_STATUS_BUSY))
			return errors ? -1 : 0;
		usleep(1000);
	}
	dev_err(device, "vslice: jobs not done after %d ms\n", VSLICE_WAIT_MS);
	return -1;
}

static void vslice_send_msi(struct vfio_pci_device *device)
{
	vslice_queue(device, VSLICE_OP_NOP, VSLICE_DESC_FLAG_IRQ, 0, 0, 0);
	vslice_kick(device);
	VFIO_ASSERT_EQ(vslice_memcpy_wait(device), 0);
	vslice_write(device, vslice_ctx0(VSLICE_CTX_IRQ_STATUS), VSLICE_CTX_IRQ_DONE);
}

struct vfio_pci_driver_ops vslice_ops = {
	.name = "vslice",
	.probe = vslice_probe,
	.init = vslice_init,
	.remove = vslice_remove,
	.memcpy_start = vslice_memcpy_start,
	.memcpy_wait = vslice_memcpy_wait,
	.send_msi = vslice_send_msi,
};
