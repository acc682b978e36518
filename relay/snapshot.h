/*
 * snapshot: a parsed pg_snapshot and the set D of the delivery.
 *
 *   - snapshot, a parsed pg_snapshot ("xmin:xmax:xip,...") and
 *     snapshot_visible(), PostgreSQL's pg_visible_in_snapshot();
 *   - dset, the bounded set D of (position, txid) pairs of events delivered
 *     from a NOTIFY whose transaction the frontier snapshot does not see
 *     yet.  A pair, not a position: any role may NOTIFY, so a forged
 *     payload may name a real position with a txid of its own, and must
 *     not make the real change at that position look like a duplicate.
 *
 * No I/O, no clock.  Not thread-safe.
 */
#ifndef RELAY_SNAPSHOT_H
#define RELAY_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Most in-progress transactions a snapshot may list (each costs 8 bytes). */
#define SNAPSHOT_MAX_XIP (1u << 20)

/*
 * A parsed pg_snapshot.  xip[0..nxip) is sorted ascending without
 * duplicates and owned by the snapshot (release with snapshot_free()).
 */
typedef struct snapshot
{
	uint64_t xmin;
	uint64_t xmax;
	uint64_t *xip; /* owned; NULL when nxip == 0 */
	size_t nxip;
} snapshot;

/*
 * Parse text[0..len) in PostgreSQL's pg_snapshot output form
 * "xmin:xmax:xip1,xip2,..." with the checks PostgreSQL's input function
 * makes: 1 <= xmin <= xmax, every xip in [xmin, xmax) and ascending
 * (duplicates are dropped), nothing else in the text, at most
 * SNAPSHOT_MAX_XIP entries.  Returns 0 with *out owned by the caller, or -1
 * with err set and *out zeroed.
 */
int snapshot_parse(const char *text, size_t len, snapshot *out, char *err,
				   size_t errlen);

/*
 * pg_visible_in_snapshot(txid, s) for a committed transaction: true when
 * txid < xmin, or txid < xmax and txid is not in xip; i.e. the transaction
 * had committed when the snapshot was taken.
 */
bool snapshot_visible(const snapshot *s, uint64_t txid);

/* Release xip and zero *s.  Safe on a zeroed snapshot; NULL is a no-op. */
void snapshot_free(snapshot *s);

/* ---- D: position -> txid -------------------------------------------- */

/*
 * A set of (position, txid) pairs, each with the generation it arrived in
 * (see dset_settle), holding at most
 * `max` entries in a fixed table (open addressing, linear probing, load <=
 * 1/2) allocated once by dset_init.  Positions come from the database's
 * sequence; the hash mixes them with a per-set key so that they spread
 * whatever their pattern.
 */
typedef struct dset_entry
{
	int64_t position; /* 0 = empty slot */
	uint64_t txid;
	unsigned gen;
} dset_entry;

typedef struct dset
{
	dset_entry *slots; /* owned */
	size_t mask;	   /* slots - 1 */
	size_t count;
	size_t max;
	uint64_t key;
} dset;

/*
 * An empty set for at most max entries (max >= 1, at most 2^30).  key
 * perturbs the hash (pass a random value).  Returns 0, or -1 when out of
 * memory or max is out of range (*d is then zeroed).  Release with
 * dset_free().
 */
int dset_init(dset *d, size_t max, uint64_t key);

/* Release the table and zero *d.  Safe on a zeroed set; NULL is a no-op. */
void dset_free(dset *d);

typedef enum dset_result
{
	DSET_ADDED = 0,
	DSET_PRESENT, /* the pair is already in the set */
	DSET_FULL,	  /* max entries already; nothing changed */
} dset_result;

/* Add (position, txid), arrived in generation gen; position must be >= 1. */
dset_result dset_add(dset *d, int64_t position, uint64_t txid, unsigned gen);

bool dset_contains(const dset *d, int64_t position, uint64_t txid);

/*
 * Remove every entry whose txid is visible in s, and every entry of a
 * generation before gen that s does not see: a NOTIFY is sent only after
 * its transaction commits, so a snapshot taken after the notification
 * arrived sees a real txid; one it does not see was forged.  Returns how
 * many were removed; *forged (may be NULL) gets how many of them were
 * forged.
 */
size_t dset_settle(dset *d, const snapshot *s, unsigned gen, size_t *forged);

static inline size_t
dset_count(const dset *d)
{
	return d->count;
}

#endif
