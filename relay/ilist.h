/*
 * ilist: an intrusive, circular doubly-linked list, after PostgreSQL's
 * lib/ilist.h (dlist).
 *
 * An element embeds a dlist_node and belongs to whoever allocated it; the
 * list only links it.  The head is a sentinel node, so insertion and removal
 * never test for the first or last element, and a node can unlink itself
 * without knowing its list's head.  An unlinked node has next == NULL
 * (dlist_node_init), which dlist_node_is_linked() tests; dlist_delete()
 * leaves a node in that state, so deleting twice is harmless.
 *
 * Iterating with dlist_foreach_modify() allows deleting the current node.
 *
 * Not thread-safe; no allocation.
 */
#ifndef RELAY_ILIST_H
#define RELAY_ILIST_H

#include <stdbool.h>
#include <stddef.h>

typedef struct dlist_node
{
	struct dlist_node *prev;
	struct dlist_node *next;
} dlist_node;

typedef struct dlist_head
{
	dlist_node head; /* sentinel: head.next is the first element */
} dlist_head;

/* The struct that embeds `ptr` as its member `field`. */
#define dlist_container(type, field, ptr)                                      \
	((type *) ((char *) (ptr) -offsetof(type, field)))

static inline void
dlist_init(dlist_head *h)
{
	h->head.prev = h->head.next = &h->head;
}

static inline void
dlist_node_init(dlist_node *n)
{
	n->prev = n->next = NULL;
}

static inline bool
dlist_node_is_linked(const dlist_node *n)
{
	return n->next != NULL;
}

static inline bool
dlist_is_empty(const dlist_head *h)
{
	return h->head.next == &h->head;
}

static inline void
dlist_insert_after(dlist_node *after, dlist_node *n)
{
	n->prev = after;
	n->next = after->next;
	after->next->prev = n;
	after->next = n;
}

static inline void
dlist_push_head(dlist_head *h, dlist_node *n)
{
	dlist_insert_after(&h->head, n);
}

static inline void
dlist_push_tail(dlist_head *h, dlist_node *n)
{
	dlist_insert_after(h->head.prev, n);
}

/* Unlinks n from whatever list holds it; a no-op when it is not linked. */
static inline void
dlist_delete(dlist_node *n)
{
	if (!dlist_node_is_linked(n))
		return;
	n->prev->next = n->next;
	n->next->prev = n->prev;
	dlist_node_init(n);
}

/* First / last node, or NULL for an empty list. */
static inline dlist_node *
dlist_head_node(const dlist_head *h)
{
	return dlist_is_empty(h) ? NULL : h->head.next;
}

static inline dlist_node *
dlist_tail_node(const dlist_head *h)
{
	return dlist_is_empty(h) ? NULL : h->head.prev;
}

/* The node after n in h, or NULL when n is the last one. */
static inline dlist_node *
dlist_next_node(const dlist_head *h, const dlist_node *n)
{
	return n->next == &h->head ? NULL : n->next;
}

/*
 * for (dlist_iter it ...) style loops:
 *
 *   dlist_iter it;
 *   dlist_foreach(it, &list)
 *       use(dlist_container(elem, link, it.cur));
 *
 * dlist_foreach_modify allows dlist_delete(it.cur) inside the loop.
 */
typedef struct dlist_iter
{
	dlist_node *cur;
	const dlist_node *end;
} dlist_iter;

typedef struct dlist_mutable_iter
{
	dlist_node *cur;
	dlist_node *next;
	const dlist_node *end;
} dlist_mutable_iter;

#define dlist_foreach(iter, lhead)                                             \
	for ((iter).end = &(lhead)->head, (iter).cur = (lhead)->head.next;         \
		 (iter).cur != (iter).end; (iter).cur = (iter).cur->next)

#define dlist_foreach_modify(iter, lhead)                                      \
	for ((iter).end = &(lhead)->head, (iter).cur = (lhead)->head.next,         \
		(iter).next = (iter).cur->next;                                        \
		 (iter).cur != (iter).end;                                             \
		 (iter).cur = (iter).next, (iter).next = (iter).cur->next)

#endif
