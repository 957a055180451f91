// SPDX-License-Identifier: GPL-2.0
/*
 * jobguest: a bare-metal guest (multiboot, 32-bit) that keeps an mdev
 * instance's context 0 busy with checksum jobs and checks every result,
 * so that QEMU's own migration of the guest is tested with jobs in flight.
 *
 * Found on PCI bus 0 by its IDs; BAR0 is used where the firmware put it,
 * the VRAM BAR through PAE paging (it may sit above 4 GiB). The command
 * line says what to hash: "len=N fnv=H" -- bytes [0, N) of the slice
 * (written by the test before the guest starts) and their FNV-1a 64.
 * The ring lives right after them. Jobs go in batches of BATCH; two
 * batches are always queued, so the device never idles while the guest
 * runs. After each batch the guest checks every descriptor (done, result
 * H) and that the completed count neither lags the jobs seen done nor
 * passes the consumer index or the jobs submitted, then prints one line
 * on the debug console (port 0xe9). Any mismatch prints "jobguest: BAD"
 * and stops the guest.
 */
#include "kernel.h"
#include "vslice_regs.h"

#define SLOTS 256
#define BATCH 64
#define VRAM_VA 0x40000000u	/* PDPT entry 1: nothing else lives there */
#define MB_MAGIC 0x1badb002u

struct mb_header {
	u32 magic, flags, checksum;
};

static const struct mb_header mb __section(".multiboot") __used __aligned(4) = {
	MB_MAGIC, 0, -(MB_MAGIC)
};

static u64 pdpt[4] __aligned(32);
static u64 pd[4][512] __aligned(4096);
static u32 bar0;

static inline void port_write8(u16 port, u8 v)
{
	asm volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline void port_write32(u16 port, u32 v)
{
	asm volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

static inline u32 port_read32(u16 port)
{
	u32 v;

	asm volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

/* Device memory: one 32-bit access each, never merged or cached. */
static inline u32 readl(u32 addr)
{
	u32 v;

	asm volatile("movl (%1), %0" : "=r"(v) : "r"(addr) : "memory");
	return v;
}

static inline void writel(u32 addr, u32 v)
{
	asm volatile("movl %0, (%1)" : : "r"(v), "r"(addr) : "memory");
}

static inline void cpu_relax(void)
{
	asm volatile("pause" : : : "memory");
}

static void puts_(const char *s)
{
	while (*s)
		port_write8(0xe9, (u8)*s++);
}

static void puthex(u64 v)
{
	int i;

	puts_("0x");
	for (i = 60; i >= 0; i -= 4)
		port_write8(0xe9, (u8)"0123456789abcdef"[(v >> i) & 0xf]);
}

static void putdec(u32 v)
{
	char b[11];
	int i = 10;

	b[i] = 0;
	do {
		b[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	puts_(b + i);
}

static __noreturn void stop(const char *why)
{
	puts_("jobguest: BAD ");
	puts_(why);
	puts_("\n");
	for (;;)
		asm volatile("cli; hlt");
}

static u32 cfg_read(u32 dev, u32 off)
{
	port_write32(0xcf8, 0x80000000u | dev << 11 | off);
	return port_read32(0xcfc);
}

/* Context 0's register at offset off. */
static u32 ctx0(u32 off)
{
	return bar0 + VSLICE_CTX_BASE + off;
}

/* The descriptor of job index (free-running) in the ring at slice offset ring. */
static u32 desc(u32 index, u32 ring)
{
	return VRAM_VA + ring + (index % SLOTS) * VSLICE_DESC_SIZE;
}

static void writeq(u32 addr, u64 v)
{
	writel(addr, (u32)v);
	writel(addr + 4, (u32)(v >> 32));
}

static u64 readq(u32 addr)
{
	return readl(addr) | (u64)readl(addr + 4) << 32;
}

/* "key=N" (decimal, or hex after 0x) in the multiboot command line; 0 when absent. */
static u64 arg(const char *cmdline, const char *key)
{
	const char *p = cmdline;
	u64 v = 0;
	const char *k;
	u32 shift = 0;

	while (p && *p) {
		for (k = key; *k && *p == *k; k++, p++)
			;
		if (!*k && *p == '=') {
			p++;
			if (p[0] == '0' && p[1] == 'x') {
				p += 2;
				shift = 4;
			}
			for (; *p && *p != ' '; p++) {
				u32 d = *p <= '9' ? *p - '0' : (*p | 0x20) - 'a' + 10;

				/* v * 10 without a 64-bit multiply helper */
				v = shift ? v << shift | d : (v << 3) + (v << 1) + d;
			}
			return v;
		}
		while (*p && *p != ' ')
			p++;
		while (*p == ' ')
			p++;
	}
	return 0;
}

/* Identity-map the low 4 GiB but PDPT entry 1, which maps the VRAM BAR. */
static void map(u64 vram_phys)
{
	u32 i, j;

	for (i = 0; i < 4; i++) {
		for (j = 0; j < 512; j++) {
			u64 pa = (u64)i << 30 | (u64)j << 21;

			if (i == VRAM_VA >> 30)
				pa = vram_phys + ((u64)j << 21);
			pd[i][j] = pa | 0x83;	/* present, writable, 2 MiB */
		}
		pdpt[i] = (u32)pd[i] | 1;
	}
	asm volatile("mov %%cr4, %%eax; or $0x20, %%eax; mov %%eax, %%cr4\n\t"
		     "mov %0, %%cr3\n\t"
		     "mov %%cr0, %%eax; or $0x80000000, %%eax; mov %%eax, %%cr0"
		     : : "r"(pdpt) : "eax", "memory");
}

/* Queues BATCH checksum jobs over [0, len) of the slice after *tail. */
static void submit(u32 *tail, u32 ring, u64 len)
{
	u32 k;

	for (k = 0; k < BATCH; k++) {
		u32 d = desc(*tail + k, ring);

		writel(d + VSLICE_DESC_OPCODE, VSLICE_OP_CHECKSUM);
		writel(d + VSLICE_DESC_FLAGS, 0);
		writeq(d + VSLICE_DESC_SRC, 0);
		writeq(d + VSLICE_DESC_DST, 0);
		writel(d + VSLICE_DESC_LEN, (u32)len);
		writel(d + VSLICE_DESC_VALUE, 0);
		writel(d + VSLICE_DESC_STATUS, 0);
		writeq(d + VSLICE_DESC_RESULT, 0);
	}
	*tail += BATCH;
	writel(ctx0(VSLICE_CTX_RING_TAIL), *tail);
	writel(ctx0(VSLICE_CTX_DOORBELL), 1);
}

void jobguest_main(u32 magic, const u32 *mbi)
{
	const char *cmdline = 0;
	u32 dev, tail, seen, ring, spin;
	u64 len, fnv, bar2;

	if (magic == 0x2badb002u && (mbi[0] & 4))
		cmdline = (const char *)mbi[4];
	len = arg(cmdline, "len");
	fnv = arg(cmdline, "fnv");
	if (!len || len > VSLICE_JOB_MAX_LEN || len % VSLICE_DESC_SIZE)
		stop("command line: want len=N fnv=H");
	for (dev = 0; dev < 32; dev++)
		if (cfg_read(dev, 0) == (VSLICE_PCI_INSTANCE_DEVICE_ID << 16 |
					 VSLICE_PCI_VENDOR_ID))
			break;
	if (dev == 32)
		stop("no instance on bus 0");
	if (!(cfg_read(dev, 4) & 2))
		stop("memory decoding is off");
	bar0 = cfg_read(dev, 0x10) & ~0xfu;
	bar2 = (cfg_read(dev, 0x18) & ~0xfu) | (u64)cfg_read(dev, 0x1c) << 32;
	map(bar2);
	if (readl(bar0 + VSLICE_REG_ID) != VSLICE_DEVICE_ID_MAGIC)
		stop("BAR0 is not a vslice register window");
	ring = (u32)len;
	if (ring + SLOTS * VSLICE_DESC_SIZE > readl(bar0 + VSLICE_REG_VRAM_SIZE_LO) ||
	    readl(bar0 + VSLICE_REG_VRAM_SIZE_HI))
		stop("the slice cannot hold the data and the ring");
	puts_("jobguest: instance at 00:");
	putdec(dev);
	puts_(" BAR0 ");
	puthex(bar0);
	puts_(" BAR2 ");
	puthex(bar2);
	puts_("\n");

	writel(ctx0(VSLICE_CTX_IRQ_MASK), VSLICE_CTX_IRQ_DONE | VSLICE_CTX_IRQ_ERROR);
	writel(ctx0(VSLICE_CTX_RING_BASE_LO), ring);
	writel(ctx0(VSLICE_CTX_RING_BASE_HI), 0);
	writel(ctx0(VSLICE_CTX_RING_SIZE), SLOTS);
	tail = readl(ctx0(VSLICE_CTX_RING_TAIL));
	if (tail != readl(ctx0(VSLICE_CTX_RING_HEAD)) || readl(ctx0(VSLICE_CTX_ERROR)))
		stop("context 0 is not idle");
	seen = tail;
	submit(&tail, ring, len);
	puts_("jobguest: running\n");
	for (;;) {
		u32 k, done, head, last = seen + BATCH - 1;

		submit(&tail, ring, len);
		while (!readl(desc(last, ring) + VSLICE_DESC_STATUS))
			for (spin = 0; spin < 20000; spin++)
				cpu_relax();
		for (k = seen; k != seen + BATCH; k++) {
			u32 d = desc(k, ring);

			if (readl(d + VSLICE_DESC_STATUS) != VSLICE_DESC_STATUS_DONE)
				stop("a job failed");
			if (readq(d + VSLICE_DESC_RESULT) != fnv)
				stop("a checksum differs");
		}
		seen += BATCH;
		done = readl(ctx0(VSLICE_CTX_COMPLETED));
		head = readl(ctx0(VSLICE_CTX_RING_HEAD));
		if (done - seen > tail - seen || head - done > tail - done)
			stop("the completed count disagrees with the jobs");
		puts_("jobguest: ");
		putdec(seen);
		puts_(" jobs verified\n");
	}
}

/* Multiboot enters here: 32-bit protected mode, paging off, EAX/EBX set. */
asm(".section .text.start, \"ax\"\n"
	".globl _start\n"
	"_start:\n"
	"	mov $stack_top, %esp\n"
	"	push %ebx\n"
	"	push %eax\n"
	"	call jobguest_main\n"
	"1:	cli; hlt; jmp 1b\n"
	".section .bss\n"
	".balign 16\n"
	"	.skip 16384\n"
	"stack_top:\n"
	".previous\n");
