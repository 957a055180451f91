/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What include/linux/types.h and compiler_attributes.h give kernel code,
 * for jobguest.c, which is built freestanding (no kernel, no libc).
 */
#ifndef JOBGUEST_KERNEL_H
#define JOBGUEST_KERNEL_H

#include <stdint.h>

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;

#define __aligned(x) __attribute__((__aligned__(x)))
#define __section(s) __attribute__((__section__(s)))
#define __used __attribute__((__used__))
#define __noreturn __attribute__((__noreturn__))

#endif
