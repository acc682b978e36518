/*
 * htab: an intrusive chained hash table and the hash functions the relay's
 * tables share.
 *
 * Entries embed an hnode (usually as their first member) and are owned by
 * the caller; the table only links them.  Lookups walk the chain of
 * htab_first(t, hash) comparing hnode.hash first, then the caller's key.
 * Keys that come from clients (ids, dataset names, query texts) must be
 * hashed with htab_siphash and a random key, so that a client cannot choose
 * keys that all land in one chain.
 *
 * Not thread-safe.
 */
#ifndef RELAY_HTAB_H
#define RELAY_HTAB_H

#include <stddef.h>
#include <stdint.h>

typedef struct hnode
{
	struct hnode *next;
	uint64_t hash;
} hnode;

typedef struct htab
{
	hnode **b;
	size_t mask; /* buckets - 1 */
	size_t n;
} htab;

/* SipHash-2-4 of data[0..len) under a 16-byte key. */
uint64_t htab_siphash(const uint8_t key[16], const void *data, size_t len);

/* A mixer for pointers, which clients do not choose. */
uint64_t htab_ptrhash(const void *ptr);

/* An empty table; -1 when out of memory.  Free with htab_free(). */
int htab_init(htab *t);

/* Frees the bucket array only: the entries belong to the caller. */
void htab_free(htab *t);

/* Head of the chain that holds entries of this hash (follow ->next). */
static inline hnode *
htab_first(const htab *t, uint64_t hash)
{
	return t->b[hash & t->mask];
}

/* Links e under hash; grows the table as needed (never fails). */
void htab_insert(htab *t, hnode *e, uint64_t hash);

/* Unlinks e, which must be in t.  May shrink the table. */
void htab_remove(htab *t, hnode *e);

/*
 * Walks every entry, in no particular order:
 *
 *   htab_iter it;
 *   for (hnode *e = htab_iter_first(&it, t); e; e = htab_iter_next(&it))
 *
 * Nothing may be inserted into or removed from t during the walk (either
 * can resize it); to empty a table, use htab_free_entries().  A table
 * whose htab_init() failed (or a zeroed one) walks as empty.
 */
typedef struct htab_iter
{
	const htab *t;
	size_t bucket;
	hnode *cur;
} htab_iter;

hnode *htab_iter_first(htab_iter *it, const htab *t);
hnode *htab_iter_next(htab_iter *it);

/*
 * Calls free_entry(e, arg) once for every entry, then leaves t empty (its
 * bucket array is kept).  free_entry may free e but must not use t.  A
 * no-op on a table whose htab_init() failed (or a zeroed one), so that
 * teardown after a partial construction needs no test.
 */
void htab_free_entries(htab *t, void (*free_entry)(hnode *e, void *arg),
					   void *arg);

#endif
