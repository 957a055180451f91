// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit tests for the C shim's own logic (c-shim/vslice_shim_logic.h).
 * Loading the module runs the suite; results are in the kernel log and in
 * /sys/kernel/debug/kunit/vslice_shim/results.
 */

#include <kunit/test.h>
#include <linux/module.h>

#include "../c-shim/vslice_shim_logic.h"

static void vslice_region_pos_roundtrip(struct kunit *test)
{
	static const u64 offsets[] = { 0, 1, 0xfff, 1ULL << 32, VSLICE_REGION_MASK };
	unsigned int index;
	int i;

	for (index = 0; index < 10; index++) {
		for (i = 0; i < ARRAY_SIZE(offsets); i++) {
			u64 pos = vslice_region_pos(index, offsets[i]);

			KUNIT_EXPECT_EQ(test, vslice_region_index(pos), index);
			KUNIT_EXPECT_EQ(test, vslice_region_offset(pos), offsets[i]);
		}
	}
}

static void vslice_region_pos_matches_vfio_pci(struct kunit *test)
{
	/* vfio-pci: VFIO_PCI_OFFSET_SHIFT is 40, BAR2 is index 2. */
	KUNIT_EXPECT_EQ(test, vslice_region_pos(2, 0x10), 0x20000000010ULL);
	KUNIT_EXPECT_EQ(test, vslice_region_index(0x70000000000LL), 7U);
	/* An offset too large for the encoding does not leak into the index. */
	KUNIT_EXPECT_EQ(test, vslice_region_index(vslice_region_pos(1, ~0ULL)), 1U);
}

static struct kunit_case vslice_shim_cases[] = {
	KUNIT_CASE(vslice_region_pos_roundtrip),
	KUNIT_CASE(vslice_region_pos_matches_vfio_pci),
	{}
};

static struct kunit_suite vslice_shim_suite = {
	.name = "vslice_shim",
	.test_cases = vslice_shim_cases,
};

kunit_test_suite(vslice_shim_suite);

MODULE_DESCRIPTION("KUnit tests for the vslice C shim");
MODULE_LICENSE("GPL");
