/*
 * presence: memberships of connections in documents, per dataset.
 *
 * Four intrusive chained hash tables index the state: datasets by name,
 * documents by (dataset, id), present users by (document, userId), and
 * connections by handle.  A membership links one connection to one present
 * user of one document; it sits on its document's list (router fan-out)
 * and on its connection's list (drop on close, bounded by
 * max_docs_per_conn, so scanning it is cheap).
 *
 * The per-dataset, per-document lists are ilist.h dlists: an entity leaves
 * them in O(1) whatever their length.  A connection's memberships form a
 * plain singly-linked chain: every operation on it scans it anyway (to find
 * the document, or to drop them all), and a second link would make each
 * membership 8 bytes larger.
 *
 * Entities that disappear during an operation are parked on a graveyard
 * and freed at the start of the next modifying call, so that the diffs
 * returned can keep pointing at their strings without copies.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "htab.h"
#include "ilist.h"
#include "presence.h"
#include "tstr.h"

/* ---- state ---------------------------------------------------------- */

typedef struct pr_dataset
{
	hnode hn;		 /* must be first */
	dlist_head docs; /* in the order they got their first user */
	char name[];
} pr_dataset;

struct presence_doc
{
	hnode hn; /* must be first */
	pr_dataset *ds;
	dlist_node ds_link; /* on ds->docs */
	dlist_head users;	/* present users, join order */
	dlist_head members; /* most recent first */
	char id[];
};

struct presence_user
{
	hnode hn; /* must be first */
	presence_doc *doc;
	dlist_node doc_link; /* on doc->users */
	const char *name;	 /* points into id[], after the id's NUL */
	uint32_t nconns;	 /* this user's connections on the document */
	char id[];
};

typedef struct pr_conn
{
	hnode hn; /* must be first */
	void *conn;
	struct presence_member *members; /* via conn_next, newest first */
	uint32_t n;
} pr_conn;

struct presence_member
{
	pr_conn *conn;
	presence_user *user;
	presence_member *conn_next;
	dlist_node doc_link; /* on user->doc->members */
};

struct presence
{
	htab datasets, docs, users, conns;
	size_t max_docs;
	uint8_t key[16];
	presence_diff *diffs; /* max_docs entries: a drop never allocates */
	size_t ndiffs;
	hnode *grave; /* datasets, docs and users to free, via hn.next */
};

/* The element of a dlist node, or NULL past either end. */
static const presence_doc *
doc_at(const dlist_node *n)
{
	return n ? dlist_container(presence_doc, ds_link, n) : NULL;
}

static const presence_user *
user_at(const dlist_node *n)
{
	return n ? dlist_container(presence_user, doc_link, n) : NULL;
}

static const presence_member *
member_at(const dlist_node *n)
{
	return n ? dlist_container(presence_member, doc_link, n) : NULL;
}

static uint64_t
doc_hash(const presence *p, const pr_dataset *ds, const char *id)
{
	return htab_siphash(p->key, id, strlen(id)) ^ htab_ptrhash(ds);
}

static uint64_t
user_hash(const presence *p, const presence_doc *d, const char *id)
{
	return htab_siphash(p->key, id, strlen(id)) ^ htab_ptrhash(d);
}

static pr_dataset *
find_dataset(const presence *p, const char *name)
{
	uint64_t h = htab_siphash(p->key, name, strlen(name));

	for (hnode *e = htab_first(&p->datasets, h); e; e = e->next)
		if (e->hash == h && !strcmp(((pr_dataset *) e)->name, name))
			return (pr_dataset *) e;
	return NULL;
}

static presence_doc *
find_doc(const presence *p, const pr_dataset *ds, const char *id)
{
	uint64_t h = doc_hash(p, ds, id);

	for (hnode *e = htab_first(&p->docs, h); e; e = e->next)
	{
		presence_doc *d = (presence_doc *) e;

		if (e->hash == h && d->ds == ds && !strcmp(d->id, id))
			return d;
	}
	return NULL;
}

static presence_user *
find_user(const presence *p, const presence_doc *d, const char *id)
{
	uint64_t h = user_hash(p, d, id);

	for (hnode *e = htab_first(&p->users, h); e; e = e->next)
	{
		presence_user *u = (presence_user *) e;

		if (e->hash == h && u->doc == d && !strcmp(u->id, id))
			return u;
	}
	return NULL;
}

static pr_conn *
find_conn(const presence *p, const void *conn)
{
	uint64_t h = htab_ptrhash(conn);

	for (hnode *e = htab_first(&p->conns, h); e; e = e->next)
		if (e->hash == h && ((pr_conn *) e)->conn == conn)
			return (pr_conn *) e;
	return NULL;
}

/* Free what the previous operation's diffs pointed to, start a new list. */
static void
begin_op(presence *p, presence_diffs *out)
{
	while (p->grave)
	{
		hnode *e = p->grave;

		p->grave = e->next;
		free(e);
	}
	p->ndiffs = 0;
	out->v = p->diffs;
	out->n = 0;
}

static void
bury(presence *p, hnode *e)
{
	e->next = p->grave;
	p->grave = e;
}

presence *
presence_new(size_t max_docs_per_conn, const uint8_t seed[16])
{
	presence *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->max_docs = max_docs_per_conn ? max_docs_per_conn
									: PRESENCE_DEFAULT_MAX_DOCS_PER_CONN;
	memcpy(p->key, seed, sizeof(p->key));
	p->diffs = calloc(p->max_docs, sizeof(*p->diffs));
	if (!p->diffs || htab_init(&p->datasets) || htab_init(&p->docs) ||
		htab_init(&p->users) || htab_init(&p->conns))
		goto err;
	return p;
err:
	presence_free(p);
	return NULL;
}

static void
free_entry(hnode *e, void *arg)
{
	free(e);
}

/* Memberships hang off connections only. */
static void
free_conn_entry(hnode *e, void *arg)
{
	presence_member *m = ((pr_conn *) e)->members, *next;

	for (; m; m = next)
	{
		next = m->conn_next;
		free(m);
	}
	free(e);
}

static void
free_table(htab *t, void (*free_fn)(hnode *, void *))
{
	htab_free_entries(t, free_fn, NULL);
	htab_free(t);
}

void
presence_free(presence *p)
{
	presence_diffs unused;

	if (!p)
		return;
	begin_op(p, &unused);
	free_table(&p->conns, free_conn_entry);
	free_table(&p->users, free_entry);
	free_table(&p->docs, free_entry);
	free_table(&p->datasets, free_entry);
	free(p->diffs);
	free(p);
}

presence_status
presence_join(presence *p, void *conn, const char *dataset, const char *doc_id,
			  const char *user_id, const char *user_name, presence_diffs *out)
{
	pr_conn *c, *newc = NULL;
	pr_dataset *ds, *newds = NULL;
	presence_doc *d = NULL, *newd = NULL;
	presence_user *u = NULL, *newu = NULL;
	presence_member *m;

	begin_op(p, out);
	c = find_conn(p, conn);
	ds = find_dataset(p, dataset);
	if (ds)
		d = find_doc(p, ds, doc_id);
	if (c && d)
		for (m = c->members; m; m = m->conn_next)
			if (m->user->doc == d)
				return PRESENCE_OK; /* joined already */
	if (c && c->n >= p->max_docs)
		return PRESENCE_LIMIT;
	if (d)
		u = find_user(p, d, user_id);

	/* Allocate everything first so that failure changes nothing. */
	m = calloc(1, sizeof(*m));
	if (!m)
		goto err;
	if (!c && !(c = newc = calloc(1, sizeof(*c))))
		goto err;
	if (!ds && !(ds = newds = TSTR_NEW(pr_dataset, name, dataset)))
		goto err;
	if (!d && !(d = newd = TSTR_NEW(presence_doc, id, doc_id)))
		goto err;
	if (!u)
	{
		char *copies[2];

		newu = TSTR_ALLOC(presence_user, id, copies, tstr_of(user_id),
						  tstr_of(user_name ? user_name : user_id));
		if (!newu)
			goto err;
		newu->name = copies[1];
		u = newu;
	}

	if (newc)
	{
		newc->conn = conn;
		htab_insert(&p->conns, &newc->hn, htab_ptrhash(conn));
	}
	if (newds)
	{
		dlist_init(&newds->docs);
		htab_insert(&p->datasets, &newds->hn,
					htab_siphash(p->key, dataset, strlen(dataset)));
	}
	if (newd)
	{
		newd->ds = ds;
		dlist_init(&newd->users);
		dlist_init(&newd->members);
		dlist_push_tail(&ds->docs, &newd->ds_link);
		htab_insert(&p->docs, &newd->hn, doc_hash(p, ds, doc_id));
	}
	if (newu)
	{
		newu->doc = d;
		dlist_push_tail(&d->users, &newu->doc_link);
		htab_insert(&p->users, &newu->hn, user_hash(p, d, user_id));

		p->diffs[0] = (presence_diff){PRESENCE_JOINED, ds->name, d->id,
									  newu->id, newu->name};
		out->n = p->ndiffs = 1;
	}
	u->nconns++;

	m->conn = c;
	m->user = u;
	m->conn_next = c->members;
	c->members = m;
	c->n++;
	dlist_push_head(&d->members, &m->doc_link);
	return PRESENCE_OK;

err:
	free(m);
	free(newc);
	free(newds);
	free(newd);
	free(newu);
	return PRESENCE_NOMEM;
}

/*
 * Remove membership m (whose link in its connection's list is *link) and
 * everything that becomes empty; report a leave when its user went.  The
 * connection record itself is the caller's business.
 */
static void
remove_member(presence *p, presence_member **link, presence_member *m)
{
	presence_user *u = m->user;
	presence_doc *d = u->doc;
	pr_dataset *ds = d->ds;

	*link = m->conn_next;
	m->conn->n--;
	dlist_delete(&m->doc_link);
	free(m);

	if (--u->nconns > 0)
		return;
	p->diffs[p->ndiffs++] =
		(presence_diff){PRESENCE_LEFT, ds->name, d->id, u->id, u->name};
	dlist_delete(&u->doc_link);
	htab_remove(&p->users, &u->hn);
	bury(p, &u->hn);

	if (!dlist_is_empty(&d->users))
		return;
	dlist_delete(&d->ds_link);
	htab_remove(&p->docs, &d->hn);
	bury(p, &d->hn);

	if (!dlist_is_empty(&ds->docs))
		return;
	htab_remove(&p->datasets, &ds->hn);
	bury(p, &ds->hn);
}

static void
release_conn_if_empty(presence *p, pr_conn *c)
{
	if (c->n)
		return;
	htab_remove(&p->conns, &c->hn);
	free(c);
}

void
presence_leave(presence *p, void *conn, const char *dataset, const char *doc_id,
			   presence_diffs *out)
{
	pr_conn *c;
	pr_dataset *ds;
	presence_doc *d;

	begin_op(p, out);
	if (!(c = find_conn(p, conn)) || !(ds = find_dataset(p, dataset)) ||
		!(d = find_doc(p, ds, doc_id)))
		return;
	for (presence_member **link = &c->members; *link;
		 link = &(*link)->conn_next)
		if ((*link)->user->doc == d)
		{
			remove_member(p, link, *link);
			break;
		}
	out->n = p->ndiffs;
	release_conn_if_empty(p, c);
}

void
presence_drop_connection(presence *p, void *conn, presence_diffs *out)
{
	pr_conn *c;

	begin_op(p, out);
	if (!(c = find_conn(p, conn)))
		return;
	/* Oldest membership last on the list: leaves come newest first. */
	while (c->members)
		remove_member(p, &c->members, c->members);
	out->n = p->ndiffs;
	release_conn_if_empty(p, c);
}

size_t
presence_conn_docs(const presence *p, void *conn)
{
	const pr_conn *c = find_conn(p, conn);

	return c ? c->n : 0;
}

const presence_doc *
presence_docs(const presence *p, const char *dataset)
{
	const pr_dataset *ds = find_dataset(p, dataset);

	return ds ? doc_at(dlist_head_node(&ds->docs)) : NULL;
}

const presence_doc *
presence_doc_next(const presence_doc *d)
{
	return doc_at(dlist_next_node(&d->ds->docs, &d->ds_link));
}

const char *
presence_doc_id(const presence_doc *d)
{
	return d->id;
}

const presence_user *
presence_doc_users(const presence_doc *d)
{
	return user_at(dlist_head_node(&d->users));
}

const presence_user *
presence_user_next(const presence_user *u)
{
	return user_at(dlist_next_node(&u->doc->users, &u->doc_link));
}

const char *
presence_user_id(const presence_user *u)
{
	return u->id;
}

const char *
presence_user_name(const presence_user *u)
{
	return u->name;
}

const presence_member *
presence_members(const presence *p, const char *dataset, const char *doc_id)
{
	const pr_dataset *ds = find_dataset(p, dataset);
	const presence_doc *d = ds ? find_doc(p, ds, doc_id) : NULL;

	return d ? member_at(dlist_head_node(&d->members)) : NULL;
}

const presence_member *
presence_member_next(const presence_member *m)
{
	return member_at(dlist_next_node(&m->user->doc->members, &m->doc_link));
}

void *
presence_member_conn(const presence_member *m)
{
	return m->conn->conn;
}
