/*
 * tstr: see tstr.h.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tstr.h"

void *
tstr_alloc(size_t size, size_t off, const tstr *strs, size_t n, char **copies)
{
	size_t total = off;
	char *blk, *p;

	for (size_t i = 0; i < n; i++)
	{
		if (strs[i].len >= SIZE_MAX - total)
			return NULL;
		total += strs[i].len + 1;
	}
	/* The flexible array may start inside the struct's tail padding. */
	blk = calloc(1, total > size ? total : size);
	if (!blk)
		return NULL;
	p = blk + off;
	for (size_t i = 0; i < n; i++)
	{
		if (strs[i].len)
			memcpy(p, strs[i].ptr, strs[i].len);
		p[strs[i].len] = '\0';
		if (copies)
			copies[i] = p;
		p += strs[i].len + 1;
	}
	return blk;
}
