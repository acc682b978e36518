/*
 * htab: see htab.h.
 */
#include <stdlib.h>

#include "htab.h"

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                               \
	do                                                                         \
	{                                                                          \
		v0 += v1;                                                              \
		v1 = ROTL(v1, 13);                                                     \
		v1 ^= v0;                                                              \
		v0 = ROTL(v0, 32);                                                     \
		v2 += v3;                                                              \
		v3 = ROTL(v3, 16);                                                     \
		v3 ^= v2;                                                              \
		v0 += v3;                                                              \
		v3 = ROTL(v3, 21);                                                     \
		v3 ^= v0;                                                              \
		v2 += v1;                                                              \
		v1 = ROTL(v1, 17);                                                     \
		v1 ^= v2;                                                              \
		v2 = ROTL(v2, 32);                                                     \
	} while (0)

static uint64_t
le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* SipHash-2-4: ids come from clients, so the table must not be floodable. */
uint64_t
htab_siphash(const uint8_t key[16], const void *data, size_t len)
{
	const uint8_t *in = data;
	uint64_t k0 = le64(key), k1 = le64(key + 8);
	uint64_t v0 = UINT64_C(0x736f6d6570736575) ^ k0;
	uint64_t v1 = UINT64_C(0x646f72616e646f6d) ^ k1;
	uint64_t v2 = UINT64_C(0x6c7967656e657261) ^ k0;
	uint64_t v3 = UINT64_C(0x7465646279746573) ^ k1;
	uint64_t b = (uint64_t) len << 56;
	size_t left = len & 7;
	const uint8_t *end = in + len - left;

	for (; in != end; in += 8)
	{
		uint64_t m = le64(in);

		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (size_t i = 0; i < left; i++)
		b |= (uint64_t) in[i] << (8 * i);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/* Pointers are not attacker-chosen: a good mixer is enough. */
uint64_t
htab_ptrhash(const void *ptr)
{
	uint64_t h = (uint64_t) (uintptr_t) ptr;

	h ^= h >> 33;
	h *= UINT64_C(0xff51afd7ed558ccd);
	h ^= h >> 33;
	h *= UINT64_C(0xc4ceb9fe1a85ec53);
	h ^= h >> 33;
	return h;
}

#define HTAB_MIN 16

int
htab_init(htab *t)
{
	t->b = calloc(HTAB_MIN, sizeof(*t->b));
	t->mask = HTAB_MIN - 1;
	t->n = 0;
	return t->b ? 0 : -1;
}

static void
htab_resize(htab *t, size_t nb)
{
	hnode **b = calloc(nb, sizeof(*b));

	/* Failing to resize only costs speed: chains get longer. */
	if (!b)
		return;
	for (size_t i = 0; i <= t->mask; i++)
	{
		hnode *e = t->b[i], *next;

		for (; e; e = next)
		{
			next = e->next;
			e->next = b[e->hash & (nb - 1)];
			b[e->hash & (nb - 1)] = e;
		}
	}
	free(t->b);
	t->b = b;
	t->mask = nb - 1;
}

void
htab_insert(htab *t, hnode *e, uint64_t hash)
{
	hnode **head = &t->b[hash & t->mask];

	e->hash = hash;
	e->next = *head;
	*head = e;
	if (++t->n > t->mask + 1)
		htab_resize(t, (t->mask + 1) * 2);
}

void
htab_remove(htab *t, hnode *e)
{
	hnode **pp = &t->b[e->hash & t->mask];

	while (*pp != e)
		pp = &(*pp)->next;
	*pp = e->next;
	e->next = NULL;
	/* Shrink with hysteresis so churn around a size does not thrash. */
	if (--t->n < (t->mask + 1) / 8 && t->mask + 1 > HTAB_MIN)
		htab_resize(t, (t->mask + 1) / 2);
}

static hnode *
htab_iter_scan(htab_iter *it)
{
	for (; it->bucket <= it->t->mask; it->bucket++)
		if (it->t->b[it->bucket])
			return it->cur = it->t->b[it->bucket];
	return it->cur = NULL;
}

hnode *
htab_iter_first(htab_iter *it, const htab *t)
{
	it->t = t;
	it->bucket = 0;
	if (!t->b)
		return it->cur = NULL;
	return htab_iter_scan(it);
}

hnode *
htab_iter_next(htab_iter *it)
{
	if (!it->cur)
		return NULL;
	if (it->cur->next)
		return it->cur = it->cur->next;
	it->bucket++;
	return htab_iter_scan(it);
}

void
htab_free_entries(htab *t, void (*free_entry)(hnode *e, void *arg), void *arg)
{
	if (!t->b)
		return;
	for (size_t i = 0; i <= t->mask; i++)
	{
		hnode *e = t->b[i], *next;

		t->b[i] = NULL;
		for (; e; e = next)
		{
			next = e->next;
			free_entry(e, arg);
		}
	}
	t->n = 0;
}

void
htab_free(htab *t)
{
	free(t->b);
	t->b = NULL;
	t->mask = 0;
	t->n = 0;
}
