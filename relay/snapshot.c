/*
 * snapshot: pg_snapshot text and visibility, and the set D.  See snapshot.h.
 */
#include <stdlib.h>
#include <string.h>

#include "snapshot.h"
#include "textparse.h"


void
snapshot_free(snapshot *s)
{
	if (s == NULL)
		return;
	free(s->xip);
	memset(s, 0, sizeof(*s));
}

/* The decimal number at text[*i..len) up to the next non-digit. */
static int
snap_number(const char *text, size_t len, size_t *i, uint64_t *out)
{
	size_t start = *i;

	while (*i < len && text[*i] >= '0' && text[*i] <= '9')
		(*i)++;
	return parse_decimal(text + start, *i - start, UINT64_MAX, out);
}

int
snapshot_parse(const char *text, size_t len, snapshot *out, char *err,
			   size_t errlen)
{
	size_t i = 0;
	size_t cap = 0;
	bool first = true;
	uint64_t v;

	memset(out, 0, sizeof(*out));
	if (snap_number(text, len, &i, &out->xmin) < 0 || i >= len ||
		text[i++] != ':' || snap_number(text, len, &i, &out->xmax) < 0 ||
		i >= len || text[i++] != ':' || out->xmin > out->xmax)
		goto bad;
	while (i < len)
	{
		if (!first && text[i++] != ',')
			goto bad;
		first = false;
		if (snap_number(text, len, &i, &v) < 0 || v < out->xmin ||
			v >= out->xmax)
			goto bad;
		if (out->nxip > 0 && v <= out->xip[out->nxip - 1])
		{
			if (v < out->xip[out->nxip - 1])
				goto bad;
			continue; /* PostgreSQL skips duplicates too */
		}
		if (out->nxip == cap)
		{
			size_t ncap = cap ? cap * 2 : 8;
			uint64_t *nxip;

			if (cap >= SNAPSHOT_MAX_XIP)
			{
				snapshot_free(out);
				seterr(err, errlen, "snapshot lists more than %u transactions",
					   SNAPSHOT_MAX_XIP);
				return -1;
			}
			if (ncap > SNAPSHOT_MAX_XIP)
				ncap = SNAPSHOT_MAX_XIP;
			nxip = realloc(out->xip, ncap * sizeof(*nxip));
			if (nxip == NULL)
			{
				snapshot_free(out);
				seterr(err, errlen, "out of memory");
				return -1;
			}
			out->xip = nxip;
			cap = ncap;
		}
		out->xip[out->nxip++] = v;
	}
	return 0;

bad:
	snapshot_free(out);
	seterr(err, errlen, "invalid pg_snapshot text");
	return -1;
}

bool
snapshot_visible(const snapshot *s, uint64_t txid)
{
	size_t lo = 0, hi = s->nxip;

	if (txid < s->xmin)
		return true;
	if (txid >= s->xmax)
		return false;
	while (lo < hi)
	{
		size_t mid = lo + (hi - lo) / 2;

		if (s->xip[mid] == txid)
			return false;
		if (s->xip[mid] < txid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return true;
}

/* ---- D -------------------------------------------------------------- */

#define DSET_MAX_ENTRIES ((size_t) 1 << 30)

/* splitmix64's finaliser: sequential positions spread over the table. */
static size_t
dset_slot(const dset *d, int64_t position, uint64_t txid)
{
	/* the txid mixed in: many forged txids for one position spread too */
	uint64_t z =
		((uint64_t) position ^ d->key) + txid * UINT64_C(0x9e3779b97f4a7c15);

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	z ^= z >> 31;
	return (size_t) z & d->mask;
}

int
dset_init(dset *d, size_t max, uint64_t key)
{
	size_t n = 2;

	memset(d, 0, sizeof(*d));
	if (max < 1 || max > DSET_MAX_ENTRIES)
		return -1;
	while (n < 2 * max)
		n *= 2;
	d->slots = calloc(n, sizeof(*d->slots));
	if (d->slots == NULL)
		return -1;
	d->mask = n - 1;
	d->max = max;
	d->key = key;
	return 0;
}

void
dset_free(dset *d)
{
	if (d == NULL)
		return;
	free(d->slots);
	memset(d, 0, sizeof(*d));
}

dset_result
dset_add(dset *d, int64_t position, uint64_t txid, unsigned gen)
{
	size_t i = dset_slot(d, position, txid);

	for (; d->slots[i].position != 0; i = (i + 1) & d->mask)
	{
		if (d->slots[i].position == position && d->slots[i].txid == txid)
			return DSET_PRESENT;
	}
	if (d->count >= d->max)
		return DSET_FULL;
	d->slots[i].position = position;
	d->slots[i].txid = txid;
	d->slots[i].gen = gen;
	d->count++;
	return DSET_ADDED;
}

bool
dset_contains(const dset *d, int64_t position, uint64_t txid)
{
	if (d->count == 0)
		return false;
	for (size_t i = dset_slot(d, position, txid); d->slots[i].position != 0;
		 i = (i + 1) & d->mask)
	{
		if (d->slots[i].position == position && d->slots[i].txid == txid)
			return true;
	}
	return false;
}

/*
 * Backward-shift deletion: later members of the probe run move into the
 * hole when their home slot does not lie cyclically in (hole, their slot],
 * so lookups never need tombstones.
 */
static void
dset_delete_at(dset *d, size_t hole)
{
	size_t j = hole;

	for (;;)
	{
		size_t home;

		j = (j + 1) & d->mask;
		if (d->slots[j].position == 0)
			break;
		home = dset_slot(d, d->slots[j].position, d->slots[j].txid);
		/* stays when home is in (hole, j], cyclically */
		if (hole <= j ? (hole < home && home <= j) : (hole < home || home <= j))
			continue;
		d->slots[hole] = d->slots[j];
		hole = j;
	}
	d->slots[hole].position = 0;
	d->slots[hole].txid = 0;
	d->slots[hole].gen = 0;
	d->count--;
}

size_t
dset_settle(dset *d, const snapshot *s, unsigned gen, size_t *forged)
{
	size_t removed = 0, unseen = 0;

	/*
	 * A deletion may pull an entry into slot i (from later in its run, or
	 * from the wrapped start of the table), so slot i is examined again
	 * until it keeps its entry.  Entries only ever move backwards into the
	 * hole, so none is skipped.
	 */
	for (size_t i = 0; i <= d->mask && d->count > 0;)
	{
		const dset_entry *e = &d->slots[i];
		bool visible = e->position != 0 && snapshot_visible(s, e->txid);

		if (e->position != 0 && (visible || e->gen < gen))
		{
			if (!visible)
				unseen++;
			dset_delete_at(d, i);
			removed++;
		}
		else
			i++;
	}
	if (forged)
		*forged = unseen;
	return removed;
}
