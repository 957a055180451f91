/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The part of libuuid's <uuid/uuid.h> the VFIO selftests library uses
 * (uuid_parse for VF tokens), for the build root, which has no uuid-dev.
 */
#ifndef VSLICE_COMPAT_UUID_H
#define VSLICE_COMPAT_UUID_H

#include <ctype.h>
#include <string.h>

typedef unsigned char uuid_t[16];

static inline int uuid_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" into @uu: 0, or -1 if malformed. */
static inline int uuid_parse(const char *in, uuid_t uu)
{
	int i, n = 0;

	if (strlen(in) != 36)
		return -1;
	for (i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (in[i] != '-')
				return -1;
			continue;
		}
		if (uuid_hex(in[i]) < 0 || uuid_hex(in[i + 1]) < 0)
			return -1;
		uu[n++] = uuid_hex(in[i]) << 4 | uuid_hex(in[i + 1]);
		i++;
	}
	return 0;
}

#endif /* VSLICE_COMPAT_UUID_H */
