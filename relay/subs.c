/*
 * subs: subscription registry, see subs.h.
 *
 * Six intrusive hash tables (htab.h):
 *   filters   query text -> compiled filter, shared by every group of that
 *             text (users counts the groups; the last one frees it);
 *   datasets  name -> its scan list of unindexed groups and the
 *             attributes its buckets index;
 *   buckets   (dataset, attribute, value) -> the groups whose filter can
 *             only match documents with that value (an equality key,
 *             groq_filter_eq_key(), such as `_id == $id`, else the type
 *             key `_type == "post"`);
 *   needs     (dataset, type) -> how many groups of that type key need the
 *             document while indexed by another attribute;
 *   groups    (dataset, filter, canonical params) -> the connections;
 *   conns     handle -> the connection's subscriptions.
 * A subscription record links one connection to one group: it sits on its
 * connection's list (bounded by max_per_conn, so scanning it is cheap) and
 * at index idx of its group's arrays, which lets a connection leave a group
 * of any size by swap-remove.
 *
 * A bucket's groups, a scan list and a dataset's attributes are ilist.h
 * dlists, in creation order so that matching order is deterministic.  A
 * connection's subscriptions form a singly-linked chain: every operation
 * on it scans it anyway (to find a text, or to drop them all), and a
 * second link would make each subscription record 8 bytes larger.
 *
 * Mutations allocate everything they may need first and link it second, so
 * that an error leaves the registry as it was (see sub_plan).
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "groq.h"
#include "htab.h"
#include "ilist.h"
#include "subs.h"
#include "tstr.h"

typedef struct sgroup sgroup;
typedef struct ssub ssub;

typedef struct sfilter
{
	hnode hn;		/* must be first; s->filters */
	groq_filter *f; /* one reference */
	size_t users;	/* groups using it */
	bool needs_doc; /* reads more than _id and _type */
	size_t len;
	char text[]; /* NUL-terminated */
} sfilter;

/* An attribute that buckets of a dataset index (few per dataset). */
typedef struct skeyattr
{
	dlist_node link; /* on the dataset's keyattrs */
	size_t nbuckets;
	bool with_type; /* buckets keyed by (_type, attribute) */
	char name[];
} skeyattr;

typedef struct sdataset
{
	hnode hn;			   /* must be first; s->datasets */
	dlist_head scan;	   /* groups without a key */
	size_t scan_needs_doc; /* of which reading more than _id/_type */
	dlist_head keyattrs;
	size_t keyed_needs_doc; /* groups reading more than _id/_type in
							 * buckets of attributes other than _type,
							 * whose filter has no type key */
	size_t ngroups;			/* every group of the dataset */
	char name[];
} sdataset;

/*
 * Per (dataset, type): groups of that type key reading more than _id/_type
 * that sit in buckets of other attributes (`_type == "post" && slug ==
 * $s`), so that subs_needs_document() stays per type for them.
 */
typedef struct sneed
{
	hnode hn; /* must be first; s->needs */
	sdataset *ds;
	size_t n;
	char type[];
} sneed;

/* The groups of one value of one attribute of a dataset. */
typedef struct sbucket
{
	hnode hn; /* must be first; s->buckets */
	skeyattr *attr;
	dlist_head groups;
	size_t needs_doc;
	char value[]; /* the attribute's value, as a key text */
} sbucket;

struct sgroup
{
	hnode hn; /* must be first; s->groups */
	sdataset *ds;
	sbucket *bucket; /* NULL: on ds->scan */
	sfilter *filter;
	sneed *need;	 /* counted there, or NULL */
	dlist_node link; /* on bucket->groups or ds->scan */
	json_t *params;	 /* owned; NULL means {} */
	void **conns;	 /* conns[0..n): the handles given to on_match */
	ssub **members;	 /* members[i]->idx == i */
	uint32_t n, cap;
	char params_text[]; /* canonical JSON; "" for no params */
};

typedef struct sconn
{
	hnode hn; /* must be first; s->conns */
	void *conn;
	ssub *subs;
	size_t n;
} sconn;

struct ssub
{
	sgroup *group;
	ssub *next; /* connection's list */
	uint32_t idx;
};

struct subs
{
	htab filters, datasets, buckets, needs, groups, conns;
	groq_limits limits;
	size_t max_per_conn;
	uint8_t key[16];
};

/* ---- lookups -------------------------------------------------------- */

static uint64_t
filter_hash(const subs *s, const char *text, size_t len)
{
	return htab_siphash(s->key, text, len);
}

static sfilter *
filter_find(const subs *s, const char *text, size_t len, uint64_t hash)
{
	for (hnode *e = htab_first(&s->filters, hash); e; e = e->next)
	{
		sfilter *fe = (sfilter *) e;

		if (e->hash == hash && fe->len == len && !memcmp(fe->text, text, len))
			return fe;
	}
	return NULL;
}

static uint64_t
dataset_hash(const subs *s, const char *name)
{
	return htab_siphash(s->key, name, strlen(name));
}

static sdataset *
dataset_find(const subs *s, const char *name)
{
	uint64_t hash = dataset_hash(s, name);

	for (hnode *e = htab_first(&s->datasets, hash); e; e = e->next)
		if (e->hash == hash && !strcmp(((sdataset *) e)->name, name))
			return (sdataset *) e;
	return NULL;
}

static skeyattr *
keyattr_find(const sdataset *ds, const char *name, bool with_type)
{
	dlist_iter it;

	dlist_foreach(it, &ds->keyattrs)
	{
		skeyattr *a = dlist_container(skeyattr, link, it.cur);

		if (a->with_type == with_type && !strcmp(a->name, name))
			return a;
	}
	return NULL;
}

/* An attribute belongs to one dataset: its address keys the bucket. */
static uint64_t
bucket_hash(const subs *s, const skeyattr *attr, const char *value)
{
	return htab_siphash(s->key, value, strlen(value)) ^ htab_ptrhash(attr);
}

static sbucket *
bucket_find(const subs *s, const skeyattr *attr, const char *value)
{
	uint64_t hash = bucket_hash(s, attr, value);

	for (hnode *e = htab_first(&s->buckets, hash); e; e = e->next)
	{
		sbucket *b = (sbucket *) e;

		if (e->hash == hash && b->attr == attr && !strcmp(b->value, value))
			return b;
	}
	return NULL;
}

/* The bucket of dataset ds for `_type` equal to type_key, if any. */
static sbucket *
type_bucket_find(const subs *s, const sdataset *ds, const char *type_key)
{
	const skeyattr *a = keyattr_find(ds, "_type", false);

	return a ? bucket_find(s, a, type_key) : NULL;
}

static uint64_t
need_hash(const subs *s, const sdataset *ds, const char *type)
{
	return htab_siphash(s->key, type, strlen(type)) ^ htab_ptrhash(ds);
}

static sneed *
need_find(const subs *s, const sdataset *ds, const char *type)
{
	uint64_t hash = need_hash(s, ds, type);

	for (hnode *e = htab_first(&s->needs, hash); e; e = e->next)
	{
		sneed *n = (sneed *) e;

		if (e->hash == hash && n->ds == ds && !strcmp(n->type, type))
			return n;
	}
	return NULL;
}

static bool
is_type_attr(const skeyattr *a)
{
	return !a->with_type && !strcmp(a->name, "_type");
}

static uint64_t
group_hash(const subs *s, const sdataset *ds, const sfilter *fe,
		   const char *params_text)
{
	uint64_t hf = htab_ptrhash(fe);

	/* Rotate one pointer hash so that swapping roles does not cancel. */
	return htab_siphash(s->key, params_text, strlen(params_text)) ^
		   htab_ptrhash(ds) ^ ((hf << 29) | (hf >> 35));
}

static sgroup *
group_find(const subs *s, const sdataset *ds, const sfilter *fe,
		   const char *params_text, uint64_t hash)
{
	for (hnode *e = htab_first(&s->groups, hash); e; e = e->next)
	{
		sgroup *g = (sgroup *) e;

		if (e->hash == hash && g->ds == ds && g->filter == fe &&
			!strcmp(g->params_text, params_text))
			return g;
	}
	return NULL;
}

static sconn *
conn_find(const subs *s, void *conn)
{
	uint64_t hash = htab_ptrhash(conn);

	for (hnode *e = htab_first(&s->conns, hash); e; e = e->next)
		if (e->hash == hash && ((sconn *) e)->conn == conn)
			return (sconn *) e;
	return NULL;
}

/* conn's subscription of fe's text; the list is at most max_per_conn long. */
static ssub **
conn_sub_find(sconn *c, const sfilter *fe)
{
	for (ssub **pp = &c->subs; *pp; pp = &(*pp)->next)
		if ((*pp)->group->filter == fe)
			return pp;
	return NULL;
}

/* ---- groups and members --------------------------------------------- */

/* Room for one more member; -1 when out of memory (g unchanged in
 * meaning: a larger array that was obtained is simply kept). */
static int
group_reserve(sgroup *g)
{
	uint32_t cap;
	void **conns;
	ssub **members;

	if (g->n < g->cap)
		return 0;
	if (g->cap > UINT32_MAX / 2)
		return -1;
	cap = g->cap ? g->cap * 2 : 1;
	conns = realloc(g->conns, cap * sizeof(*conns));
	if (!conns)
		return -1;
	g->conns = conns;
	members = realloc(g->members, cap * sizeof(*members));
	if (!members)
		return -1;
	g->members = members;
	g->cap = cap;
	return 0;
}

/* Needs group_reserve() first. */
static void
group_add(sgroup *g, ssub *sub, void *conn)
{
	sub->group = g;
	sub->idx = g->n;
	g->conns[g->n] = conn;
	g->members[g->n] = sub;
	g->n++;
}

static void
group_free(sgroup *g)
{
	json_decref(g->params);
	free(g->conns);
	free(g->members);
	free(g);
}

static void
filter_free(sfilter *fe)
{
	groq_filter_unref(fe->f);
	free(fe);
}

/*
 * Link a new group into the registry: its table, its bucket or scan list
 * and the counters subs_needs_document() reads.  Its bucket, dataset,
 * filter and need are linked already.  group_destroy() undoes it.
 */
static void
group_link(subs *s, sgroup *g)
{
	sdataset *ds = g->ds;
	sfilter *fe = g->filter;
	sbucket *b = g->bucket;

	htab_insert(&s->groups, &g->hn, group_hash(s, ds, fe, g->params_text));
	if (b)
	{
		dlist_push_tail(&b->groups, &g->link);
		b->needs_doc += fe->needs_doc;
		if (g->need)
			g->need->n++;
		else if (!is_type_attr(b->attr))
			ds->keyed_needs_doc += fe->needs_doc;
	}
	else
	{
		dlist_push_tail(&ds->scan, &g->link);
		ds->scan_needs_doc += fe->needs_doc;
	}
	ds->ngroups++;
	fe->users++;
}

/* Unlink and free g and whatever only it kept alive (bucket, dataset,
 * compiled filter). */
static void
group_destroy(subs *s, sgroup *g)
{
	sdataset *ds = g->ds;
	sfilter *fe = g->filter;
	sbucket *b = g->bucket;

	htab_remove(&s->groups, &g->hn);
	dlist_delete(&g->link);
	if (b)
	{
		b->needs_doc -= fe->needs_doc;
		if (g->need)
		{
			if (--g->need->n == 0)
			{
				htab_remove(&s->needs, &g->need->hn);
				free(g->need);
			}
		}
		else if (!is_type_attr(b->attr))
			ds->keyed_needs_doc -= fe->needs_doc;
		if (dlist_is_empty(&b->groups))
		{
			skeyattr *a = b->attr;

			htab_remove(&s->buckets, &b->hn);
			free(b);
			if (--a->nbuckets == 0)
			{
				dlist_delete(&a->link);
				free(a);
			}
		}
	}
	else
		ds->scan_needs_doc -= fe->needs_doc;
	group_free(g);
	if (--ds->ngroups == 0)
	{
		htab_remove(&s->datasets, &ds->hn);
		free(ds);
	}
	if (--fe->users == 0)
	{
		htab_remove(&s->filters, &fe->hn);
		filter_free(fe);
	}
}

/* Take sub out of its group: O(1) whatever the group's size. */
static void
group_leave(subs *s, ssub *sub)
{
	sgroup *g = sub->group;
	uint32_t last = g->n - 1;

	if (sub->idx != last)
	{
		g->conns[sub->idx] = g->conns[last];
		g->members[sub->idx] = g->members[last];
		g->members[sub->idx]->idx = sub->idx;
	}
	g->n = last;
	sub->group = NULL;
	if (g->n == 0)
	{
		group_destroy(s, g);
		return;
	}
	/* Give memory back after a crowd left; a failed shrink costs nothing. */
	if (g->cap >= 8 && g->n <= g->cap / 4)
	{
		void **conns = realloc(g->conns, (g->cap / 2) * sizeof(*conns));
		ssub **members;

		if (!conns)
			return;
		g->conns = conns;
		members = realloc(g->members, (g->cap / 2) * sizeof(*members));
		if (!members)
			return;
		g->members = members;
		g->cap /= 2;
	}
}

/* ---- registry ------------------------------------------------------- */

subs *
subs_new(const groq_limits *limits, size_t max_per_conn, const uint8_t seed[16])
{
	subs *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	if (htab_init(&s->filters) < 0 || htab_init(&s->datasets) < 0 ||
		htab_init(&s->buckets) < 0 || htab_init(&s->needs) < 0 ||
		htab_init(&s->groups) < 0 || htab_init(&s->conns) < 0)
	{
		subs_free(s);
		return NULL;
	}
	s->limits = limits ? *limits : groq_limits_default();
	s->max_per_conn = max_per_conn ? max_per_conn : SUBS_DEFAULT_MAX_PER_CONN;
	memcpy(s->key, seed, sizeof(s->key));
	return s;
}

static void
free_conn_entry(hnode *e, void *arg)
{
	sconn *c = (sconn *) e;
	ssub *sub, *next;

	for (sub = c->subs; sub; sub = next)
	{
		next = sub->next;
		free(sub);
	}
	free(c);
}

static void
free_group_entry(hnode *e, void *arg)
{
	group_free((sgroup *) e);
}

static void
free_filter_entry(hnode *e, void *arg)
{
	filter_free((sfilter *) e);
}

static void
free_entry(hnode *e, void *arg)
{
	free(e);
}

static void
free_dataset_entry(hnode *e, void *arg)
{
	sdataset *ds = (sdataset *) e;
	dlist_mutable_iter it;

	dlist_foreach_modify(it, &ds->keyattrs)
		free(dlist_container(skeyattr, link, it.cur));
	free(ds);
}

/* Links between entries of different tables are not followed: every
 * entry is freed from its own table. */
static void
table_drain(htab *t, void (*free_fn)(hnode *, void *))
{
	htab_free_entries(t, free_fn, NULL);
	htab_free(t);
}

void
subs_free(subs *s)
{
	if (!s)
		return;
	table_drain(&s->conns, free_conn_entry);
	table_drain(&s->groups, free_group_entry);
	table_drain(&s->buckets, free_entry);
	table_drain(&s->needs, free_entry);
	table_drain(&s->datasets, free_dataset_entry);
	table_drain(&s->filters, free_filter_entry);
	free(s);
}

/* ---- new entries (zeroed, unlinked) --------------------------------- */

static const char *const id_type_attrs[] = {"_id", "_type"};

/* A new filter entry for text; NULL with *st set on error. */
static sfilter *
filter_new(const subs *s, const char *text, size_t len, groq_error *err,
		   subs_status *st)
{
	groq_filter *f = groq_compile(text, len, &s->limits, err);
	sfilter *fe;

	if (!f)
	{
		*st = SUBS_INVALID_QUERY;
		return NULL;
	}
	fe = TSTR_ALLOC(sfilter, text, NULL, ((tstr){text, len}));
	if (!fe)
	{
		groq_filter_unref(f);
		*st = SUBS_NOMEM;
		return NULL;
	}
	fe->f = f;
	fe->needs_doc = !groq_filter_reads_only(f, id_type_attrs, 2);
	fe->len = len;
	return fe;
}

static sdataset *
dataset_new(const char *name)
{
	sdataset *ds = TSTR_NEW(sdataset, name, name);

	if (ds)
	{
		dlist_init(&ds->scan);
		dlist_init(&ds->keyattrs);
	}
	return ds;
}

static skeyattr *
keyattr_new(const char *name, bool with_type)
{
	skeyattr *a = TSTR_NEW(skeyattr, name, name);

	if (a)
		a->with_type = with_type;
	return a;
}

static sbucket *
bucket_new(skeyattr *attr, const char *value)
{
	sbucket *b = TSTR_NEW(sbucket, value, value);

	if (b)
	{
		b->attr = attr;
		dlist_init(&b->groups);
	}
	return b;
}

static sneed *
need_new(sdataset *ds, const char *type)
{
	sneed *n = TSTR_NEW(sneed, type, type);

	if (n)
		n->ds = ds;
	return n;
}

static sconn *
conn_new(void *conn)
{
	sconn *c = calloc(1, sizeof(*c));

	if (c)
		c->conn = conn;
	return c;
}

/* ---- keys ----------------------------------------------------------- */

/*
 * A key text (groq_eq_key_text()) in buf when it fits, else in a new
 * allocation left in *heap for the caller to free.  NULL when v is not a
 * key, or when out of memory.
 */
static const char *
json_key(json_t *v, char *buf, size_t cap, char **heap)
{
	size_t n = groq_eq_key_text(v, buf, cap);

	*heap = NULL;
	if (n == 0)
		return NULL;
	if (n < cap)
		return buf;
	if (!(*heap = malloc(n + 1)))
		return NULL;
	groq_eq_key_text(v, *heap, n + 1);
	return *heap;
}

/* json_key() of a string. */
static const char *
string_key(const char *str, char *buf, size_t cap, char **heap)
{
	size_t len = strlen(str);
	size_t n = groq_eq_key_string(str, len, buf, cap);

	*heap = NULL;
	if (n < cap)
		return buf;
	if (!(*heap = malloc(n + 1)))
		return NULL;
	groq_eq_key_string(str, len, *heap, n + 1);
	return *heap;
}

/*
 * The key of a (type, value) bucket: "<length of the type's key>:" then
 * both key texts, so that no two pairs share a text.  In buf when it fits,
 * else in *heap (see json_key()).
 */
static const char *
pair_key(const char *type_key, const char *key, char *buf, size_t cap,
		 char **heap)
{
	int n = snprintf(buf, cap, "%zu:%s%s", strlen(type_key), type_key, key);

	*heap = NULL;
	if (n < 0)
		return NULL;
	if ((size_t) n < cap)
		return buf;
	if (!(*heap = malloc((size_t) n + 1)))
		return NULL;
	snprintf(*heap, (size_t) n + 1, "%zu:%s%s", strlen(type_key), type_key,
			 key);
	return *heap;
}

/* strdup() of a key that json_key() & co. left in buf or *heap. */
static char *
key_dup(const char *k, char *heap)
{
	return heap ? heap : k ? strdup(k) : NULL;
}

/*
 * The bucket a new group of filter f with these params goes to, the most
 * selective one it has: (type, value) when the filter has both a type key
 * and an equality key (`_type == "page" && slug == $slug`), the value of
 * its equality key alone (`_id == $id`), its type alone, or none (*attr
 * NULL: the dataset's scan list).  A $param whose value cannot be a key
 * counts as no equality key.  *key is a new allocation the caller frees;
 * false only when out of memory.
 */
static bool
choose_key(const groq_filter *f, json_t *params, const char **attr,
		   bool *with_type, char **key)
{
	const char *literal, *param, *k = NULL, *tk = NULL;
	const char *type_key = groq_filter_type_key(f);
	char buf[64], tbuf[64], *heap = NULL, *theap = NULL;

	*key = NULL;
	*with_type = false;
	if (groq_filter_eq_key(f, attr, &literal, &param))
	{
		k = literal ? literal
					: json_key(params ? json_object_get(params, param) : NULL,
							   buf, sizeof(buf), &heap);
		if (!k && heap)
			return false; /* out of memory, not "no key" */
	}
	if (type_key)
	{
		tk = string_key(type_key, tbuf, sizeof(tbuf), &theap);
		if (!tk)
			goto out;
	}
	if (k && tk)
	{
		char pbuf[128], *pheap;
		const char *pk = pair_key(tk, k, pbuf, sizeof(pbuf), &pheap);

		*with_type = true;
		*key = key_dup(pk, pheap);
	}
	else if (k)
	{
		*key = heap ? heap : strdup(k);
		heap = NULL;
	}
	else if (tk)
	{
		*attr = "_type";
		*key = key_dup(tk, theap);
		theap = NULL;
	}
	else
	{
		*attr = NULL;
		return true;
	}
out:
	free(heap);
	free(theap);
	return *key != NULL;
}


/* ---- subscribe ------------------------------------------------------ */

/*
 * One subscribe, in two phases.  The plan_* steps find what exists and
 * allocate what is missing (new_*: allocated, not linked) and may fail;
 * plan_commit() then links everything and cannot fail, or plan_discard()
 * frees the new entries and the registry is as it was.
 */
typedef struct sub_plan
{
	void *conn;
	sconn *c, *new_c;
	ssub *old; /* conn's subscription of this text, or NULL */
	ssub *new_sub;
	sfilter *fe, *new_fe;
	uint64_t fhash;
	char *dumped;	   /* canonical params (owned), or NULL for none */
	const char *ptext; /* dumped, or "" */
	sdataset *ds, *new_ds;
	sgroup *g, *new_g;
	skeyattr *ka, *new_ka;
	sbucket *bucket, *new_bucket;
	sneed *need, *new_need;
} sub_plan;

/* conn's record, the text's filter, conn's subscription of the text. */
static void
plan_lookup(const subs *s, sub_plan *p, const char *query, size_t len)
{
	ssub **oldp;

	p->c = conn_find(s, p->conn);
	p->fhash = filter_hash(s, query, len);
	p->fe = filter_find(s, query, len, p->fhash);
	oldp = p->c && p->fe ? conn_sub_find(p->c, p->fe) : NULL;
	p->old = oldp ? *oldp : NULL;
}

/* The compiled filter (compiled now if the text is new), and params that
 * define every $name it uses. */
static subs_status
plan_filter(const subs *s, sub_plan *p, const char *query, size_t len,
			json_t *params, groq_error *err)
{
	subs_status st = SUBS_NOMEM;

	if (!p->fe && !(p->fe = p->new_fe = filter_new(s, query, len, err, &st)))
		return st;
	if (!groq_params_check(p->fe->f, params, err))
		return SUBS_INVALID_QUERY;
	return SUBS_OK;
}

/*
 * The bucket, and the need counter, of a new group (p->bucket NULL: the
 * dataset's scan list).  False when out of memory.
 */
static bool
plan_bucket(const subs *s, sub_plan *p, json_t *params)
{
	const char *attr, *type_key;
	bool with_type, ok = false;
	char *value;

	if (!choose_key(p->fe->f, params, &attr, &with_type, &value))
		return false;
	if (!attr)
		return true;
	/* Nothing can hang off a dataset, or an attribute, that is new. */
	p->ka = p->new_ds ? NULL : keyattr_find(p->ds, attr, with_type);
	if (!p->ka && !(p->ka = p->new_ka = keyattr_new(attr, with_type)))
		goto out;
	p->bucket = p->new_ka ? NULL : bucket_find(s, p->ka, value);
	if (!p->bucket && !(p->bucket = p->new_bucket = bucket_new(p->ka, value)))
		goto out;
	type_key = groq_filter_type_key(p->fe->f);
	if (p->fe->needs_doc && strcmp(attr, "_type") && type_key)
	{
		p->need = p->new_ds ? NULL : need_find(s, p->ds, type_key);
		if (!p->need && !(p->need = p->new_need = need_new(p->ds, type_key)))
			goto out;
	}
	ok = true;
out:
	free(value);
	return ok;
}

/*
 * The group of (dataset, filter, params): found, or new with whatever it
 * needs (dataset, bucket).  False when out of memory.
 */
static bool
plan_group(const subs *s, sub_plan *p, const char *dataset, json_t *params)
{
	/*
	 * Equal params must land in one group whatever their key order, so
	 * groups are keyed by a canonical encoding.
	 */
	if (params && json_object_size(params) > 0)
	{
		p->dumped = json_dumps(params, JSON_COMPACT | JSON_SORT_KEYS);
		if (!p->dumped)
			return false;
		p->ptext = p->dumped;
	}
	p->ds = dataset_find(s, dataset);
	if (p->ds)
		p->g = group_find(s, p->ds, p->fe, p->ptext,
						  group_hash(s, p->ds, p->fe, p->ptext));
	if (p->g)
		return true;
	if (!p->ds && !(p->ds = p->new_ds = dataset_new(dataset)))
		return false;
	if (!plan_bucket(s, p, params))
		return false;
	p->g = p->new_g = TSTR_NEW(sgroup, params_text, p->ptext);
	if (!p->g)
		return false;
	p->g->ds = p->ds;
	p->g->bucket = p->bucket;
	p->g->filter = p->fe;
	p->g->need = p->need;
	/* a private copy: the caller's object belongs to its message */
	return !p->dumped || (p->g->params = json_deep_copy(params)) != NULL;
}

/* Room in the group and, for a new subscription, its record (and the
 * connection's).  False when out of memory. */
static bool
plan_membership(sub_plan *p)
{
	if (group_reserve(p->g) < 0)
		return false;
	if (p->old)
		return true;
	if (!(p->new_sub = malloc(sizeof(*p->new_sub))))
		return false;
	return p->c || (p->c = p->new_c = conn_new(p->conn)) != NULL;
}

static void
plan_commit(subs *s, sub_plan *p)
{
	if (p->new_fe)
		htab_insert(&s->filters, &p->new_fe->hn, p->fhash);
	if (p->new_ds)
		htab_insert(&s->datasets, &p->new_ds->hn,
					dataset_hash(s, p->new_ds->name));
	if (p->new_ka)
		dlist_push_tail(&p->ds->keyattrs, &p->new_ka->link);
	if (p->new_bucket)
	{
		htab_insert(&s->buckets, &p->new_bucket->hn,
					bucket_hash(s, p->ka, p->new_bucket->value));
		p->ka->nbuckets++;
	}
	if (p->new_need)
		htab_insert(&s->needs, &p->new_need->hn,
					need_hash(s, p->ds, p->new_need->type));
	if (p->new_g)
		group_link(s, p->new_g);
	if (p->new_c)
		htab_insert(&s->conns, &p->new_c->hn, htab_ptrhash(p->conn));
	if (p->old)
	{
		/* g already holds fe and ds, so leaving cannot free them */
		group_leave(s, p->old);
		group_add(p->g, p->old, p->conn);
	}
	else
	{
		p->new_sub->next = p->c->subs;
		p->c->subs = p->new_sub;
		p->c->n++;
		group_add(p->g, p->new_sub, p->conn);
	}
}

static void
plan_discard(sub_plan *p)
{
	free(p->new_c);
	free(p->new_sub);
	if (p->new_g)
		group_free(p->new_g);
	free(p->new_bucket);
	free(p->new_ka);
	free(p->new_need);
	free(p->new_ds);
	if (p->new_fe)
		filter_free(p->new_fe);
}

subs_status
subs_subscribe(subs *s, void *conn, const char *dataset, const char *query,
			   size_t query_len, json_t *params, groq_error *err)
{
	groq_error scratch;
	sub_plan p = {.conn = conn, .ptext = ""};
	subs_status st;

	plan_lookup(s, &p, query, query_len);
	if (!p.old && p.c && p.c->n >= s->max_per_conn)
		return SUBS_LIMIT;
	st = plan_filter(s, &p, query, query_len, params, err ? err : &scratch);
	if (st == SUBS_OK && !plan_group(s, &p, dataset, params))
		st = SUBS_NOMEM;
	/* The same text, dataset and params again: nothing to do. */
	if (st == SUBS_OK && !(p.old && p.old->group == p.g))
	{
		if (plan_membership(&p))
			plan_commit(s, &p);
		else
			st = SUBS_NOMEM;
	}
	if (st != SUBS_OK)
		plan_discard(&p);
	free(p.dumped);
	return st;
}

/* ---- unsubscribe and match ------------------------------------------ */

/* Remove *pp (a subscription of c) and free it; c too when it was its
 * last. */
static void
conn_unsubscribe(subs *s, sconn *c, ssub **pp)
{
	ssub *sub = *pp;

	*pp = sub->next;
	group_leave(s, sub);
	free(sub);
	if (--c->n == 0)
	{
		htab_remove(&s->conns, &c->hn);
		free(c);
	}
}

void
subs_unsubscribe(subs *s, void *conn, const char *query, size_t query_len)
{
	sconn *c = conn_find(s, conn);
	sfilter *fe;
	ssub **pp;

	if (!c)
		return;
	fe = filter_find(s, query, query_len, filter_hash(s, query, query_len));
	pp = fe ? conn_sub_find(c, fe) : NULL;
	if (pp)
		conn_unsubscribe(s, c, pp);
}

void
subs_drop_connection(subs *s, void *conn)
{
	sconn *c = conn_find(s, conn);
	ssub *sub, *next;

	if (!c)
		return;
	for (sub = c->subs; sub; sub = next)
	{
		next = sub->next;
		group_leave(s, sub);
		free(sub);
	}
	htab_remove(&s->conns, &c->hn);
	free(c);
}

size_t
subs_conn_count(const subs *s, void *conn)
{
	const sconn *c = conn_find(s, conn);

	return c ? c->n : 0;
}

bool
subs_needs_document(const subs *s, const char *dataset,
					const char *document_type)
{
	const sdataset *ds = dataset_find(s, dataset);
	const sbucket *b;
	char buf[128], *heap;
	const char *key;

	if (!ds)
		return false;
	/*
	 * Buckets of other attributes cannot be told apart without the
	 * document (whose value decides which one applies): any of them that
	 * needs it asks for it.
	 */
	if (ds->scan_needs_doc || ds->keyed_needs_doc)
		return true;
	if (!document_type)
		return false;
	if (need_find(s, ds, document_type))
		return true;
	key = string_key(document_type, buf, sizeof(buf), &heap);
	/* out of memory: ask for the document, the safe answer */
	b = key ? type_bucket_find(s, ds, key) : NULL;
	free(heap);
	return !key || (b && b->needs_doc);
}

typedef struct match_ctx
{
	const rt_event *ev;
	json_t *doc;   /* the caller's, or NULL */
	json_t *built; /* {_id,_type} from the event, built on first use */
	bool build_failed;
	subs_match_fn fn;
	void *arg;
	size_t evaluations;
} match_ctx;

static json_t *
build_id_type(const rt_event *ev)
{
	json_t *o = json_object();

	if (!o || json_object_set_new(o, "_id", json_string(ev->document_id)) < 0 ||
		json_object_set_new(o, "_type",
							ev->document_type ? json_string(ev->document_type)
											  : json_null()) < 0)
	{
		json_decref(o);
		return NULL;
	}
	return o;
}

static void
match_list(match_ctx *m, const dlist_head *groups)
{
	groq_error gerr;
	json_t *doc;
	dlist_iter it;

	dlist_foreach(it, groups)
	{
		const sgroup *g = dlist_container(sgroup, link, it.cur);

		if (m->doc)
			doc = m->doc;
		else if (g->filter->needs_doc)
			continue; /* cannot be decided from _id and _type */
		else
		{
			if (!m->built && !m->build_failed)
			{
				m->built = build_id_type(m->ev);
				m->build_failed = !m->built;
			}
			/* Out of memory: an undecidable event matches nothing. */
			if (!m->built)
				return;
			doc = m->built;
		}
		m->evaluations++;
		if (groq_match(g->filter->f, doc, g->params, NULL, &gerr) == 1)
			m->fn(m->arg, g->filter->text, g->filter->len,
				  (void *const *) g->conns, g->n);
	}
}

/*
 * The key text of top-level attribute `attr` as the filters will see it:
 * from the document when there is one (so that the index never hides a
 * group that evaluation would match), else from the event for _id and
 * _type.  NULL when it cannot be a key (absent, null, an object): no
 * bucket can match then.  See json_key() for buf and *heap.
 */
static const char *
event_key(const rt_event *ev, json_t *doc, const char *attr, char *buf,
		  size_t cap, char **heap)
{
	*heap = NULL;
	if (doc)
		return json_key(json_object_get(doc, attr), buf, cap, heap);
	if (!strcmp(attr, "_id"))
		return string_key(ev->document_id, buf, cap, heap);
	if (!strcmp(attr, "_type") && ev->document_type)
		return string_key(ev->document_type, buf, cap, heap);
	return NULL;
}

size_t
subs_match(subs *s, const rt_event *ev, json_t *doc, subs_match_fn on_match,
		   void *arg)
{
	match_ctx m = {ev, doc, NULL, false, on_match, arg, 0};
	const sdataset *ds = dataset_find(s, ev->dataset);
	char tbuf[128], *theap = NULL;
	const char *type_key;
	dlist_iter it;

	if (!ds)
		return 0;
	/* Cut id and type would match the wrong filters. */
	if (!doc && ev->truncated)
		return 0;
	/*
	 * One bucket per indexed attribute: the one of the document's value.
	 * Every other bucket holds filters that are false for this document.
	 * The type's key serves the _type attribute and every (type, value)
	 * one: computed once.
	 */
	type_key = event_key(ev, doc, "_type", tbuf, sizeof(tbuf), &theap);
	dlist_foreach(it, &ds->keyattrs)
	{
		const skeyattr *a = dlist_container(skeyattr, link, it.cur);
		char buf[256], pbuf[384], *heap = NULL, *pheap = NULL;
		const char *key;
		const sbucket *b;

		if (is_type_attr(a))
			key = type_key;
		else
		{
			key = event_key(ev, doc, a->name, buf, sizeof(buf), &heap);
			if (key && a->with_type)
				key = type_key
						  ? pair_key(type_key, key, pbuf, sizeof(pbuf), &pheap)
						  : NULL;
		}
		b = key ? bucket_find(s, a, key) : NULL;
		free(heap);
		free(pheap);
		if (b)
			match_list(&m, &b->groups);
	}
	free(theap);
	match_list(&m, &ds->scan);
	json_decref(m.built);
	return m.evaluations;
}
