/*
 * subs: subscription registry, see subs.h.
 *
 * Six intrusive hash tables (htab.h):
 *   filters   query text -> compiled filter, shared by every group of that
 *             text (users counts the groups; the last one frees it);
 *   datasets  name -> its scan list of unindexed groups and the
 *             attributes its buckets index;
 *   types     (dataset, attribute, value) -> a bucket: the groups whose
 *             filter can only match documents with that value (an
 *             equality key, groq_filter_eq_key(), such as `_id == $id`,
 *             else the type key `_type == "post"`);
 *   needs     (dataset, type) -> how many groups of that type key need the
 *             document while indexed by another attribute;
 *   groups    (dataset, filter, canonical params) -> the connections;
 *   conns     handle -> the connection's subscriptions.
 * A subscription record links one connection to one group: it sits on its
 * connection's list (bounded by max_per_conn, so scanning it is cheap) and
 * at index idx of its group's arrays, which lets a connection leave a group
 * of any size by swap-remove.
 *
 * Mutations allocate everything they may need first and link it second, so
 * that an error leaves the registry as it was.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "htab.h"
#include "subs.h"

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

/* Groups in creation order, so that matching order is deterministic. */
typedef struct glist
{
	sgroup *first, *last;
} glist;

/* An attribute that buckets of a dataset index (few per dataset). */
typedef struct skeyattr
{
	struct skeyattr *next; /* the dataset's, in creation order */
	size_t nbuckets;
	bool with_type; /* buckets keyed by (_type, attribute) */
	char name[];
} skeyattr;

typedef struct sdataset
{
	hnode hn;			   /* must be first; s->datasets */
	glist scan;			   /* groups without a key */
	size_t scan_needs_doc; /* of which reading more than _id/_type */
	skeyattr *keyattrs;
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

typedef struct stype
{
	hnode hn; /* must be first; s->types */
	sdataset *ds;
	skeyattr *attr;
	glist groups;
	size_t needs_doc;
	char name[]; /* the attribute's value */
} stype;

struct sgroup
{
	hnode hn; /* must be first; s->groups */
	sdataset *ds;
	stype *type; /* NULL: on ds->scan */
	sfilter *filter;
	sneed *need;		 /* counted there, or NULL */
	sgroup *prev, *next; /* type's or scan list */
	json_t *params;		 /* owned; NULL means {} */
	void **conns;		 /* conns[0..n): the handles given to on_match */
	ssub **members;		 /* members[i]->idx == i */
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
	htab filters, datasets, types, needs, groups, conns;
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
	for (skeyattr *a = ds->keyattrs; a; a = a->next)
		if (a->with_type == with_type && !strcmp(a->name, name))
			return a;
	return NULL;
}

/* An attribute belongs to one dataset: its address keys the bucket. */
static uint64_t
type_hash(const subs *s, const skeyattr *attr, const char *value)
{
	return htab_siphash(s->key, value, strlen(value)) ^ htab_ptrhash(attr);
}

static stype *
type_find(const subs *s, const skeyattr *attr, const char *value)
{
	uint64_t hash = type_hash(s, attr, value);

	for (hnode *e = htab_first(&s->types, hash); e; e = e->next)
	{
		stype *t = (stype *) e;

		if (e->hash == hash && t->attr == attr && !strcmp(t->name, value))
			return t;
	}
	return NULL;
}

/* The bucket of dataset ds for attribute `attr` equal to value, if any. */
static stype *
bucket_find(const subs *s, const sdataset *ds, const char *attr,
			const char *value)
{
	const skeyattr *a = keyattr_find(ds, attr, false);

	return a ? type_find(s, a, value) : NULL;
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

/* ---- lists and members --------------------------------------------- */

static void
glist_append(glist *l, sgroup *g)
{
	g->next = NULL;
	g->prev = l->last;
	if (l->last)
		l->last->next = g;
	else
		l->first = g;
	l->last = g;
}

static void
glist_remove(glist *l, sgroup *g)
{
	if (g->prev)
		g->prev->next = g->next;
	else
		l->first = g->next;
	if (g->next)
		g->next->prev = g->prev;
	else
		l->last = g->prev;
}

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

/* Unlink and free g and whatever only it kept alive (type bucket, dataset,
 * compiled filter). */
static void
group_destroy(subs *s, sgroup *g)
{
	sdataset *ds = g->ds;
	sfilter *fe = g->filter;
	stype *t = g->type;

	htab_remove(&s->groups, &g->hn);
	if (t)
	{
		glist_remove(&t->groups, g);
		t->needs_doc -= fe->needs_doc;
		if (g->need)
		{
			if (--g->need->n == 0)
			{
				htab_remove(&s->needs, &g->need->hn);
				free(g->need);
			}
		}
		else if (!is_type_attr(t->attr))
			ds->keyed_needs_doc -= fe->needs_doc;
		if (!t->groups.first)
		{
			skeyattr *a = t->attr;

			htab_remove(&s->types, &t->hn);
			free(t);
			if (--a->nbuckets == 0)
			{
				skeyattr **pp = &ds->keyattrs;

				while (*pp != a)
					pp = &(*pp)->next;
				*pp = a->next;
				free(a);
			}
		}
	}
	else
	{
		glist_remove(&ds->scan, g);
		ds->scan_needs_doc -= fe->needs_doc;
	}
	group_free(g);
	if (--ds->ngroups == 0)
	{
		htab_remove(&s->datasets, &ds->hn);
		free(ds);
	}
	if (--fe->users == 0)
	{
		htab_remove(&s->filters, &fe->hn);
		groq_filter_unref(fe->f);
		free(fe);
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

/* ---- public API ----------------------------------------------------- */

subs *
subs_new(const groq_limits *limits, size_t max_per_conn, const uint8_t seed[16])
{
	subs *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	if (htab_init(&s->filters) < 0 || htab_init(&s->datasets) < 0 ||
		htab_init(&s->types) < 0 || htab_init(&s->needs) < 0 ||
		htab_init(&s->groups) < 0 || htab_init(&s->conns) < 0)
		goto err;
	s->limits = limits ? *limits : groq_limits_default();
	s->max_per_conn = max_per_conn ? max_per_conn : SUBS_DEFAULT_MAX_PER_CONN;
	memcpy(s->key, seed, sizeof(s->key));
	return s;

err:
	htab_free(&s->filters);
	htab_free(&s->datasets);
	htab_free(&s->types);
	htab_free(&s->needs);
	htab_free(&s->groups);
	htab_free(&s->conns);
	free(s);
	return NULL;
}

/* Free every entry of t with free_entry, then t's buckets. */
static void
htab_drain(htab *t, void (*free_entry)(hnode *))
{
	for (size_t i = 0; i <= t->mask; i++)
	{
		hnode *e = t->b[i], *next;

		for (; e; e = next)
		{
			next = e->next;
			free_entry(e);
		}
	}
	htab_free(t);
}

static void
free_conn(hnode *e)
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
free_group(hnode *e)
{
	group_free((sgroup *) e);
}

static void
free_filter(hnode *e)
{
	groq_filter_unref(((sfilter *) e)->f);
	free(e);
}

static void
free_plain(hnode *e)
{
	free(e);
}

static void
free_dataset(hnode *e)
{
	sdataset *ds = (sdataset *) e;
	skeyattr *a, *next;

	for (a = ds->keyattrs; a; a = next)
	{
		next = a->next;
		free(a);
	}
	free(ds);
}

void
subs_free(subs *s)
{
	if (!s)
		return;
	htab_drain(&s->conns, free_conn);
	htab_drain(&s->groups, free_group);
	htab_drain(&s->types, free_plain);
	htab_drain(&s->needs, free_plain);
	htab_drain(&s->datasets, free_dataset);
	htab_drain(&s->filters, free_filter);
	free(s);
}

static const char *const id_type_attrs[] = {"_id", "_type"};

/* A new, unlinked filter entry for text; NULL with *st set on error. */
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
	fe = malloc(sizeof(*fe) + len + 1);
	if (!fe)
	{
		groq_filter_unref(f);
		*st = SUBS_NOMEM;
		return NULL;
	}
	fe->f = f;
	fe->users = 0;
	fe->needs_doc = !groq_filter_reads_only(f, id_type_attrs, 2);
	fe->len = len;
	memcpy(fe->text, text, len);
	fe->text[len] = '\0';
	return fe;
}

/* A zeroed struct of `size` bytes whose flexible array member at name_off
 * holds a copy of name. */
static void *
named_new(size_t size, size_t name_off, const char *name)
{
	size_t len = strlen(name);
	char *p = calloc(1, size + len + 1);

	if (p)
		memcpy(p + name_off, name, len + 1);
	return p;
}

#define NAMED_NEW(type, member, name)                                          \
	((type *) named_new(sizeof(type), offsetof(type, member), (name)))

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

subs_status
subs_subscribe(subs *s, void *conn, const char *dataset, const char *query,
			   size_t query_len, json_t *params, groq_error *err)
{
	groq_error scratch;
	uint64_t fhash = filter_hash(s, query, query_len);
	sconn *c = conn_find(s, conn);
	sfilter *fe = filter_find(s, query, query_len, fhash);
	ssub **oldp = c && fe ? conn_sub_find(c, fe) : NULL;
	ssub *old = oldp ? *oldp : NULL;
	sfilter *new_fe = NULL;
	sdataset *ds, *new_ds = NULL;
	stype *t = NULL, *new_t = NULL;
	skeyattr *ka = NULL, *new_ka = NULL;
	sneed *need = NULL, *new_need = NULL;
	const char *key_attr = NULL, *type_key;
	bool with_type = false;
	char *key_value = NULL;
	sgroup *g, *new_g = NULL;
	sconn *new_c = NULL;
	ssub *new_sub = NULL;
	char *dumped = NULL;
	const char *ptext = "";
	subs_status st = SUBS_NOMEM;

	if (!err)
		err = &scratch;
	if (!old && c && c->n >= s->max_per_conn)
		return SUBS_LIMIT;
	if (!fe)
	{
		fe = new_fe = filter_new(s, query, query_len, err, &st);
		if (!fe)
			return st;
	}
	if (!groq_params_check(fe->f, params, err))
	{
		st = SUBS_INVALID_QUERY;
		goto out;
	}

	/*
	 * Equal params must land in one group whatever their key order, so
	 * groups are keyed by a canonical encoding.
	 */
	if (params && json_object_size(params) > 0)
	{
		dumped = json_dumps(params, JSON_COMPACT | JSON_SORT_KEYS);
		if (!dumped)
			goto out;
		ptext = dumped;
	}

	ds = dataset_find(s, dataset);
	g = ds ? group_find(s, ds, fe, ptext, group_hash(s, ds, fe, ptext)) : NULL;
	if (old && old->group == g)
	{
		st = SUBS_OK; /* same text, dataset and params: nothing to do */
		goto out;
	}
	if (!ds)
	{
		ds = new_ds = NAMED_NEW(sdataset, name, dataset);
		if (!ds)
			goto out;
	}
	if (!g && !choose_key(fe->f, params, &key_attr, &with_type, &key_value))
		goto out;
	if (!g)
	{
		if (key_attr)
		{
			ka = new_ds ? NULL : keyattr_find(ds, key_attr, with_type);
			if (!ka)
			{
				ka = new_ka = NAMED_NEW(skeyattr, name, key_attr);
				if (!ka)
					goto out;
				ka->with_type = with_type;
			}
			t = new_ka ? NULL : type_find(s, ka, key_value);
			if (!t)
			{
				t = new_t = NAMED_NEW(stype, name, key_value);
				if (!t)
					goto out;
				t->ds = ds;
				t->attr = ka;
			}
			type_key = groq_filter_type_key(fe->f);
			if (fe->needs_doc && strcmp(key_attr, "_type") && type_key)
			{
				need = new_ds ? NULL : need_find(s, ds, type_key);
				if (!need)
				{
					need = new_need = NAMED_NEW(sneed, type, type_key);
					if (!need)
						goto out;
					need->ds = ds;
				}
			}
		}
		g = new_g = NAMED_NEW(sgroup, params_text, ptext);
		if (!g)
			goto out;
		g->ds = ds;
		g->type = t;
		g->filter = fe;
		g->need = need;
		/* a private copy: the caller's object belongs to its message */
		if (dumped && !(g->params = json_deep_copy(params)))
			goto out;
	}
	if (group_reserve(g) < 0)
		goto out;
	if (!old)
	{
		new_sub = malloc(sizeof(*new_sub));
		if (!new_sub)
			goto out;
		if (!c)
		{
			c = new_c = calloc(1, sizeof(*c));
			if (!c)
				goto out;
			c->conn = conn;
		}
	}

	/* Nothing below fails. */
	if (new_fe)
		htab_insert(&s->filters, &new_fe->hn, fhash);
	if (new_ds)
		htab_insert(&s->datasets, &new_ds->hn, dataset_hash(s, dataset));
	if (new_ka)
	{
		skeyattr **pp = &ds->keyattrs;

		while (*pp)
			pp = &(*pp)->next;
		*pp = new_ka;
	}
	if (new_t)
	{
		htab_insert(&s->types, &new_t->hn, type_hash(s, ka, new_t->name));
		ka->nbuckets++;
	}
	if (new_g)
	{
		htab_insert(&s->groups, &new_g->hn, group_hash(s, ds, fe, ptext));
		if (t)
		{
			glist_append(&t->groups, new_g);
			t->needs_doc += fe->needs_doc;
			if (need)
			{
				if (new_need)
					htab_insert(&s->needs, &new_need->hn,
								need_hash(s, ds, new_need->type));
				need->n++;
			}
			else if (!is_type_attr(ka))
				ds->keyed_needs_doc += fe->needs_doc;
		}
		else
		{
			glist_append(&ds->scan, new_g);
			ds->scan_needs_doc += fe->needs_doc;
		}
		ds->ngroups++;
		fe->users++;
	}
	if (new_c)
		htab_insert(&s->conns, &new_c->hn, htab_ptrhash(conn));
	if (old)
	{
		/* g already holds fe and ds, so leaving cannot free them */
		group_leave(s, old);
		group_add(g, old, conn);
	}
	else
	{
		new_sub->next = c->subs;
		c->subs = new_sub;
		c->n++;
		group_add(g, new_sub, conn);
	}
	free(dumped);
	free(key_value);
	return SUBS_OK;

out:
	free(new_c);
	free(new_sub);
	if (new_g)
		group_free(new_g);
	free(new_t);
	free(new_ka);
	free(new_need);
	free(new_ds);
	if (new_fe)
		free_filter(&new_fe->hn);
	free(dumped);
	free(key_value);
	return st;
}

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
	const stype *t;

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
	{
		char buf[128], *heap;
		const char *key = string_key(document_type, buf, sizeof(buf), &heap);

		/* out of memory: ask for the document, the safe answer */
		t = key ? bucket_find(s, ds, "_type", key) : NULL;
		free(heap);
		return !key || (t && t->needs_doc);
	}
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
match_list(match_ctx *m, const sgroup *g)
{
	groq_error gerr;
	json_t *doc;

	for (; g; g = g->next)
	{
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
	for (const skeyattr *a = ds->keyattrs; a; a = a->next)
	{
		char buf[256], pbuf[384], *heap = NULL, *pheap = NULL;
		const char *key;
		const stype *t;

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
		t = key ? type_find(s, a, key) : NULL;
		free(heap);
		free(pheap);
		if (t)
			match_list(&m, t->groups.first);
	}
	free(theap);
	match_list(&m, ds->scan.first);
	json_decref(m.built);
	return m.evaluations;
}
