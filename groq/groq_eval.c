/*
 * groq_eval.c: compiled filters and their evaluation against one document.
 *
 * Values borrow from the jansson document and params (V_JARR, V_JOBJ,
 * strings); only values computed by the query (concatenations, filtered
 * arrays, literals) live in a scratch arena that starts on the stack of
 * groq_match() and is freed before it returns, so a typical filter
 * evaluates without calling malloc.
 *
 * Recursion follows the syntax tree, whose height the parser bounds by
 * max_depth; loops over arrays count against the step budget.
 */
#include "groq_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena ---- */

struct groq_arena_block
{
	groq_arena_block *next;
	max_align_t data[];
};

#define ARENA_ALIGN 16
#define ARENA_BLOCK 8192

void
groq_arena_init(groq_arena *a, void *buf, size_t size, size_t limit)
{
	a->cur = buf;
	a->left = buf ? size & ~(size_t) (ARENA_ALIGN - 1) : 0;
	a->heap = NULL;
	a->used = 0;
	a->limit = limit;
}

void *
groq_arena_alloc(groq_arena *a, size_t size)
{
	void *p;

	if (size > SIZE_MAX / 4)
		return NULL;
	size = (size + ARENA_ALIGN - 1) & ~(size_t) (ARENA_ALIGN - 1);
	if (size == 0)
		size = ARENA_ALIGN;
	if (a->limit && a->used + size > a->limit)
		return NULL;
	if (size > a->left)
	{
		size_t bs = size > ARENA_BLOCK ? size : ARENA_BLOCK;
		groq_arena_block *b = malloc(sizeof(*b) + bs);

		if (!b)
			return NULL;
		b->next = a->heap;
		a->heap = b;
		a->cur = (char *) b->data;
		a->left = bs;
	}
	p = a->cur;
	a->cur += size;
	a->left -= size;
	a->used += size;
	return p;
}

void
groq_arena_free(groq_arena *a)
{
	while (a->heap)
	{
		groq_arena_block *b = a->heap;

		a->heap = b->next;
		free(b);
	}
	a->cur = NULL;
	a->left = 0;
	a->used = 0;
}

/* ---- limits and errors ---- */

groq_limits
groq_limits_default(void)
{
	groq_limits l = {
		.max_query_len = 16 * 1024,
		.max_depth = 128,
		.max_steps = 100000,
		.max_params_size = 64 * 1024,
		.max_eval_memory = 8 * 1024 * 1024,
		.max_doc_depth = 512,
	};

	return l;
}

void
groq_limits_resolve(groq_limits *out, const groq_limits *in)
{
	groq_limits d = groq_limits_default();

	*out = in ? *in : d;
	if (!out->max_query_len)
		out->max_query_len = d.max_query_len;
	if (!out->max_depth)
		out->max_depth = d.max_depth;
	/* node heights are 16-bit */
	if (out->max_depth > 10000)
		out->max_depth = 10000;
	if (!out->max_steps)
		out->max_steps = d.max_steps;
	if (!out->max_params_size)
		out->max_params_size = d.max_params_size;
	if (!out->max_eval_memory)
		out->max_eval_memory = d.max_eval_memory;
	if (!out->max_doc_depth)
		out->max_doc_depth = d.max_doc_depth;
}

void
groq_seterr(groq_error *err, size_t pos, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return;
	err->pos = pos;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
}

/* ---- compiled filters ---- */

groq_filter *
groq_compile(const char *text, size_t len, const groq_limits *limits,
			 groq_error *err)
{
	groq_filter *f;
	size_t bad;

	if (err)
	{
		err->pos = 0;
		err->message[0] = '\0';
	}
	if (!text)
	{
		text = "";
		len = 0;
	}
	f = calloc(1, sizeof(*f));
	if (!f)
	{
		groq_seterr(err, 0, "out of memory");
		return NULL;
	}
	f->refs = 1;
	groq_limits_resolve(&f->limits, limits);
	groq_arena_init(&f->arena, NULL, 0, 0);
	if (len > f->limits.max_query_len)
	{
		groq_seterr(err, f->limits.max_query_len, "query longer than %zu bytes",
					f->limits.max_query_len);
		goto err;
	}
	bad = groq_utf8_check(text, len);
	if (bad < len)
	{
		groq_seterr(err, bad, "query is not valid UTF-8");
		goto err;
	}
	if (memchr(text, '\0', len))
	{
		groq_seterr(err, (const char *) memchr(text, '\0', len) - text,
					"NUL byte in query");
		goto err;
	}
	f->text = groq_arena_alloc(&f->arena, len + 1);
	if (!f->text)
	{
		groq_seterr(err, 0, "out of memory");
		goto err;
	}
	memcpy(f->text, text, len);
	f->text[len] = '\0';
	/* identifiers in the tree point into f->text */
	if (!groq_parse(f, f->text, len, err))
		goto err;
	return f;

err:
	groq_arena_free(&f->arena);
	free(f);
	return NULL;
}

groq_filter *
groq_filter_ref(groq_filter *f)
{
	__atomic_add_fetch(&f->refs, 1, __ATOMIC_RELAXED);
	return f;
}

void
groq_filter_unref(groq_filter *f)
{
	if (!f || __atomic_sub_fetch(&f->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	groq_arena_free(&f->arena);
	free(f);
}

const char *
groq_filter_type_key(const groq_filter *f)
{
	return f->type_key;
}

bool
groq_filter_eq_key(const groq_filter *f, const char **attr, const char **key,
				   const char **param)
{
	*attr = f->eq_attr;
	*key = f->eq_key;
	*param = f->eq_param;
	return f->eq_attr != NULL;
}

size_t
groq_eq_key_format(char tag, const char *body, size_t len, char *buf,
				   size_t cap)
{
	if (len + 2 <= cap)
	{
		buf[0] = tag;
		memcpy(buf + 1, body, len);
		buf[len + 1] = '\0';
	}
	return len + 1;
}

size_t
groq_eq_key_number(double d, char *buf, size_t cap)
{
	/* -0 == 0; %.17g gives every double one text of its own */
	int n = snprintf(buf, cap, "%.17g", d == 0 ? 0.0 : d);

	return n < 0 ? 0 : (size_t) n;
}

size_t
groq_eq_key_string(const char *s, size_t len, char *buf, size_t cap)
{
	return groq_eq_key_format('s', s, len, buf, cap);
}

size_t
groq_eq_key_text(json_t *v, char *buf, size_t cap)
{
	char num[40];
	size_t len;

	if (json_is_string(v))
	{
		const char *s = json_string_value(v);

		len = json_string_length(v);
		/* a NUL cannot be in a GROQ literal or a key */
		if (memchr(s, '\0', len))
			return 0;
		return groq_eq_key_format('s', s, len, buf, cap);
	}
	if (json_is_number(v))
	{
		double d = json_number_value(v);

		if (!isfinite(d))
			return 0;
		len = groq_eq_key_number(d, num, sizeof(num));
		return groq_eq_key_format('n', num, len, buf, cap);
	}
	if (json_is_boolean(v))
		return groq_eq_key_format('b', json_is_true(v) ? "1" : "0", 1, buf,
								  cap);
	return 0;
}

const char *
groq_filter_text(const groq_filter *f)
{
	return f->text;
}

/*
 * Params nest no deeper than this: evaluation recurses on them, and no
 * filter needs more.
 */
#define MAX_PARAMS_DEPTH 64

/*
 * JSON values plus string bytes, stopping once over limit; *too_deep set
 * (and a size over limit returned) past MAX_PARAMS_DEPTH.
 */
static size_t
params_size(json_t *j, size_t limit, unsigned depth, bool *too_deep)
{
	size_t n = 1;
	const char *k;
	json_t *v;
	size_t i;

	if (depth > MAX_PARAMS_DEPTH)
	{
		*too_deep = true;
		return limit + 1;
	}
	switch (json_typeof(j))
	{
		case JSON_STRING:
			return n + json_string_length(j);
		case JSON_ARRAY:
			json_array_foreach (j, i, v)
			{
				n += params_size(v, limit, depth + 1, too_deep);
				if (n > limit)
					return n;
			}
			return n;
		case JSON_OBJECT:
			json_object_foreach (j, k, v)
			{
				n += strlen(k) + params_size(v, limit, depth + 1, too_deep);
				if (n > limit)
					return n;
			}
			return n;
		default:
			return n;
	}
}

bool
groq_params_check(const groq_filter *f, json_t *params, groq_error *err)
{
	bool too_deep = false;

	if (params && !json_is_object(params))
	{
		groq_seterr(err, 0, "params must be a JSON object");
		return false;
	}
	if (params && params_size(params, f->limits.max_params_size, 0, &too_deep) >
					  f->limits.max_params_size)
	{
		if (too_deep)
			groq_seterr(err, 0, "params nested deeper than %d",
						MAX_PARAMS_DEPTH);
		else
			groq_seterr(err, 0, "params larger than %zu",
						f->limits.max_params_size);
		return false;
	}
	for (size_t k = 0; k < f->nparams; k++)
	{
		if (!params || !json_object_get(params, f->param_names[k]))
		{
			groq_seterr(err, f->param_pos[k], "undefined parameter $%.100s",
						f->param_names[k]);
			return false;
		}
	}
	return true;
}

int
groq_match(const groq_filter *f, json_t *doc, json_t *params,
		   const groq_limits *limits, groq_error *err)
{
	unsigned long steps_used;

	return groq_match_counted(f, doc, params, limits, &steps_used, err);
}

int
groq_match_counted(const groq_filter *f, json_t *doc, json_t *params,
				   const groq_limits *limits, unsigned long *steps_used,
				   groq_error *err)
{
	groq_limits lim;
	/* scratch for typical filters: no malloc at all */
	max_align_t buf[2048 / sizeof(max_align_t)];
	groq_arena arena;
	groq_eval ev;
	groq_value self, out;
	int rc;

	if (limits)
		groq_limits_resolve(&lim, limits);
	else
		lim = f->limits;
	groq_arena_init(&arena, buf, sizeof(buf), lim.max_eval_memory);
	ev.f = f;
	ev.params = params;
	ev.arena = &arena;
	ev.steps_left = lim.max_steps;
	ev.max_doc_depth = lim.max_doc_depth;
	ev.err = err;
	groq_value_from_json(doc, &self);
	rc = groq_eval_node(&ev, f->root, &self, &out);
	groq_arena_free(&arena);
	*steps_used = lim.max_steps - ev.steps_left;
	if (rc < 0)
		return -1;
	return out.t == V_BOOL && out.b;
}

/* ---- reads_only ---- */

static bool
in_list(const char *s, size_t len, const char *const *attrs, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if (strlen(attrs[k]) == len && !memcmp(attrs[k], s, len))
			return true;
	return false;
}

/*
 * top: n is evaluated with @ = the document (not inside a nested filter or
 * map, where @ is an element).
 */
static bool
reads_only(const groq_node *n, bool top, const char *const *attrs, size_t na)
{
	if (!n)
		return true;
	switch (n->op)
	{
		case N_THIS:
			return !top;
		case N_ATTR:
			if (!n->a || n->a->op == N_THIS)
				return !top || in_list(n->u.str.s, n->u.str.len, attrs, na);
			return reads_only(n->a, top, attrs, na);
		case N_ELEM:
		case N_COERCE:
		case N_DEREF:
		case N_SPLAT:
			return (n->a || !top) && reads_only(n->a, top, attrs, na);
		case N_SLICE:
			return (n->a || !top) && reads_only(n->a, top, attrs, na) &&
				   reads_only(n->b, top, attrs, na) &&
				   reads_only(n->c, top, attrs, na);
		case N_FILTER:
		case N_BRACKET:
		case N_MAP:
		case N_FLATMAP:
			return (n->a || !top) && reads_only(n->a, top, attrs, na) &&
				   reads_only(n->b, false, attrs, na);
		case N_CALL:
			if (n->u.fn == F_REFERENCES && top)
				return false;
			for (uint32_t k = 0; k < n->nargs; k++)
				if (!reads_only(n->args[k], top, attrs, na))
					return false;
			return true;
		case N_ARRAY:
		case N_OBJECT:
			for (uint32_t k = 0; k < n->nargs; k++)
				if (!reads_only(n->args[k], top, attrs, na))
					return false;
			return true;
		default:
			return reads_only(n->a, top, attrs, na) &&
				   reads_only(n->b, top, attrs, na) &&
				   reads_only(n->c, top, attrs, na);
	}
}

bool
groq_filter_reads_only(const groq_filter *f, const char *const *attrs, size_t n)
{
	return reads_only(f->root, true, attrs, n);
}

/* ---- values ---- */

void
groq_value_from_json(json_t *j, groq_value *out)
{
	memset(out, 0, sizeof(*out));
	if (!j)
		return;
	switch (json_typeof(j))
	{
		case JSON_OBJECT:
			out->t = V_JOBJ;
			out->u.j = j;
			break;
		case JSON_ARRAY:
			out->t = V_JARR;
			out->u.j = j;
			break;
		case JSON_STRING:
			out->t = V_STR;
			out->u.str.s = json_string_value(j);
			out->u.str.len = json_string_length(j);
			break;
		case JSON_INTEGER:
			out->t = V_NUM;
			out->u.n = (double) json_integer_value(j);
			break;
		case JSON_REAL:
			out->t = V_NUM;
			out->u.n = json_real_value(j);
			break;
		case JSON_TRUE:
			out->t = V_BOOL;
			out->b = true;
			break;
		case JSON_FALSE:
			out->t = V_BOOL;
			break;
		case JSON_NULL:
			break;
	}
}

bool
groq_is_array(const groq_value *v)
{
	return v->t == V_ARR || v->t == V_JARR;
}

bool
groq_is_object(const groq_value *v)
{
	return v->t == V_OBJ || v->t == V_JOBJ;
}

size_t
groq_array_len(const groq_value *v)
{
	return v->t == V_ARR ? v->u.arr.n : json_array_size(v->u.j);
}

void
groq_array_at(const groq_value *v, size_t i, groq_value *out)
{
	if (v->t == V_ARR)
		*out = v->u.arr.v[i];
	else
		groq_value_from_json(json_array_get(v->u.j, i), out);
}

static void
get_attr(const groq_value *base, const char *k, size_t klen, groq_value *out)
{
	if (base->t == V_JOBJ)
	{
		groq_value_from_json(json_object_getn(base->u.j, k, klen), out);
		return;
	}
	if (base->t == V_OBJ)
	{
		for (size_t i = base->u.obj.n; i-- > 0;)
		{
			const groq_kv *kv = &base->u.obj.kv[i];

			if (kv->klen == klen && !memcmp(kv->k, k, klen))
			{
				*out = kv->v;
				return;
			}
		}
	}
	out->t = V_NULL;
}

static int
type_class(const groq_value *v)
{
	if (v->t == V_JARR)
		return V_ARR;
	if (v->t == V_JOBJ)
		return V_OBJ;
	return v->t;
}

int
groq_compare(const groq_value *a, const groq_value *b)
{
	if (type_class(a) != type_class(b))
		return 2;
	switch (a->t)
	{
		case V_NUM:
			return a->u.n < b->u.n ? -1 : a->u.n > b->u.n ? 1 : 0;
		case V_BOOL:
			return (int) a->b - (int) b->b;
		case V_STR:
		{
			/* byte order of UTF-8 is code point order */
			size_t n =
				a->u.str.len < b->u.str.len ? a->u.str.len : b->u.str.len;
			int c = memcmp(a->u.str.s, b->u.str.s, n);

			if (c)
				return c < 0 ? -1 : 1;
			return a->u.str.len < b->u.str.len	 ? -1
				   : a->u.str.len > b->u.str.len ? 1
												 : 0;
		}
		case V_DATETIME:
			if (a->u.dt.sec != b->u.dt.sec)
				return a->u.dt.sec < b->u.dt.sec ? -1 : 1;
			return a->u.dt.nsec < b->u.dt.nsec	 ? -1
				   : a->u.dt.nsec > b->u.dt.nsec ? 1
												 : 0;
		default:
			return 2;
	}
}

bool
groq_equal(const groq_value *a, const groq_value *b)
{
	if (a->t == V_NULL && b->t == V_NULL)
		return true;
	return groq_compare(a, b) == 0;
}

bool
groq_array_contains(const groq_value *arr, const groq_value *x)
{
	size_t len = groq_array_len(arr);

	for (size_t i = 0; i < len; i++)
	{
		groq_value e;

		groq_array_at(arr, i, &e);
		if (groq_equal(x, &e))
			return true;
	}
	return false;
}

int
groq_eval_abort(groq_eval *ev, const groq_node *n, const char *what)
{
	groq_seterr(ev->err, n ? n->pos : 0, "%s", what);
	return -1;
}

int
groq_eval_out_of_steps(groq_eval *ev, const groq_node *n)
{
	ev->steps_left = 0;
	return groq_eval_abort(ev, n, "evaluation step limit exceeded");
}

static void *
scratch(groq_eval *ev, const groq_node *n, size_t size)
{
	void *p = groq_arena_alloc(ev->arena, size);

	if (!p)
		groq_eval_abort(ev, n, "evaluation memory limit exceeded");
	return p;
}

static void
set_bool(groq_value *out, bool b)
{
	out->t = V_BOOL;
	out->b = b;
}

static void
set_num(groq_value *out, double d)
{
	if (isfinite(d))
	{
		out->t = V_NUM;
		out->u.n = d;
	}
	else
		out->t = V_NULL;
}

#define DT_MIN (-62135596800LL) /* 0001-01-01T00:00:00Z */
#define DT_MAX 253402300799LL	/* 9999-12-31T23:59:59Z */

static void
dt_add(const groq_value *dt, double secs, groq_value *out)
{
	double whole = floor(secs);
	int64_t sec;
	int64_t nsec;

	out->t = V_NULL;
	if (!isfinite(secs) || fabs(whole) > (double) (DT_MAX - DT_MIN))
		return;
	sec = dt->u.dt.sec + (int64_t) whole;
	nsec = dt->u.dt.nsec + (int64_t) llround((secs - whole) * 1e9);
	if (nsec >= 1000000000)
	{
		sec++;
		nsec -= 1000000000;
	}
	if (sec < DT_MIN || sec > DT_MAX)
		return;
	out->t = V_DATETIME;
	out->u.dt.sec = sec;
	out->u.dt.nsec = (int32_t) nsec;
}

/* Appends the elements of arrays a and b (or merges objects) into out. */
static int
concat(groq_eval *ev, const groq_node *n, const groq_value *l,
	   const groq_value *r, groq_value *out)
{
	size_t nl = groq_array_len(l), nr = groq_array_len(r);
	groq_value *v;

	if (ev->steps_left < nl + nr)
		return groq_eval_out_of_steps(ev, n);
	ev->steps_left -= nl + nr;
	v = scratch(ev, n, sizeof(*v) * (nl + nr));
	if (!v)
		return -1;
	for (size_t i = 0; i < nl; i++)
		groq_array_at(l, i, &v[i]);
	for (size_t i = 0; i < nr; i++)
		groq_array_at(r, i, &v[nl + i]);
	out->t = V_ARR;
	out->u.arr.v = v;
	out->u.arr.n = nl + nr;
	return 0;
}

static size_t
object_size(const groq_value *o)
{
	return o->t == V_OBJ ? o->u.obj.n : json_object_size(o->u.j);
}

/* Copies the attributes of o to kv[0..); returns how many. */
static size_t
object_copy(const groq_value *o, groq_kv *kv)
{
	size_t n = 0;
	const char *k;
	json_t *v;

	if (o->t == V_OBJ)
	{
		memcpy(kv, o->u.obj.kv, sizeof(*kv) * o->u.obj.n);
		return o->u.obj.n;
	}
	json_object_foreach (o->u.j, k, v)
	{
		kv[n].k = k;
		kv[n].klen = strlen(k);
		groq_value_from_json(v, &kv[n].v);
		n++;
	}
	return n;
}

static int
merge(groq_eval *ev, const groq_node *n, const groq_value *l,
	  const groq_value *r, groq_value *out)
{
	size_t nl = object_size(l), nr = object_size(r);
	groq_kv *kv;

	if (ev->steps_left < nl + nr)
		return groq_eval_out_of_steps(ev, n);
	ev->steps_left -= nl + nr;
	kv = scratch(ev, n, sizeof(*kv) * (nl + nr));
	if (!kv)
		return -1;
	nl = object_copy(l, kv);
	nr = object_copy(r, kv + nl);
	out->t = V_OBJ;
	out->u.obj.kv = kv;
	out->u.obj.n = nl + nr;
	return 0;
}

int
groq_arith(groq_eval *ev, const groq_node *n, int op, const groq_value *l,
		   const groq_value *r, groq_value *out)
{
	bool nums = l->t == V_NUM && r->t == V_NUM;

	out->t = V_NULL;
	switch (op)
	{
		case N_ADD:
			if (nums)
				set_num(out, l->u.n + r->u.n);
			else if (l->t == V_STR && r->t == V_STR)
			{
				char *s = scratch(ev, n, l->u.str.len + r->u.str.len + 1);

				if (!s)
					return -1;
				memcpy(s, l->u.str.s, l->u.str.len);
				memcpy(s + l->u.str.len, r->u.str.s, r->u.str.len);
				s[l->u.str.len + r->u.str.len] = '\0';
				out->t = V_STR;
				out->u.str.s = s;
				out->u.str.len = l->u.str.len + r->u.str.len;
			}
			else if (groq_is_array(l) && groq_is_array(r))
				return concat(ev, n, l, r, out);
			else if (groq_is_object(l) && groq_is_object(r))
				return merge(ev, n, l, r, out);
			else if (l->t == V_DATETIME && r->t == V_NUM)
				dt_add(l, r->u.n, out);
			return 0;
		case N_SUB:
			if (nums)
				set_num(out, l->u.n - r->u.n);
			else if (l->t == V_DATETIME && r->t == V_DATETIME)
				set_num(out, (double) (l->u.dt.sec - r->u.dt.sec) +
								 (l->u.dt.nsec - r->u.dt.nsec) / 1e9);
			else if (l->t == V_DATETIME && r->t == V_NUM)
				dt_add(l, -r->u.n, out);
			return 0;
		case N_MUL:
			if (nums)
				set_num(out, l->u.n * r->u.n);
			return 0;
		case N_DIV:
			if (nums)
				set_num(out, l->u.n / r->u.n);
			return 0;
		case N_MOD:
			if (nums)
				set_num(out, fmod(l->u.n, r->u.n));
			return 0;
		case N_POW:
			if (nums)
				set_num(out, pow(l->u.n, r->u.n));
			return 0;
	}
	return 0;
}

/* ---- evaluation ---- */

static int
eval_base(groq_eval *ev, const groq_node *a, const groq_value *self,
		  groq_value *out)
{
	if (!a)
	{
		*out = *self;
		return 0;
	}
	return groq_eval_node(ev, a, self, out);
}

static int
take_steps(groq_eval *ev, const groq_node *n, size_t k)
{
	if (ev->steps_left < k)
		return groq_eval_out_of_steps(ev, n);
	ev->steps_left -= k;
	return 0;
}

static void
element(const groq_value *base, double idx, groq_value *out)
{
	double len;

	out->t = V_NULL;
	if (!groq_is_array(base) || idx != floor(idx))
		return;
	len = (double) groq_array_len(base);
	if (idx < 0)
		idx += len;
	if (idx < 0 || idx >= len)
		return;
	groq_array_at(base, (size_t) idx, out);
}

static int
slice(groq_eval *ev, const groq_node *n, const groq_value *base,
	  const groq_value *self, groq_value *out)
{
	groq_value lo, hi;
	double len, l, r;
	size_t from, to;

	out->t = V_NULL;
	if (groq_eval_node(ev, n->b, self, &lo) < 0 ||
		groq_eval_node(ev, n->c, self, &hi) < 0)
		return -1;
	if (!groq_is_array(base) || lo.t != V_NUM || hi.t != V_NUM ||
		lo.u.n != floor(lo.u.n) || hi.u.n != floor(hi.u.n))
		return 0;
	/* as JavaScript's Array#slice, like the reference implementation */
	len = (double) groq_array_len(base);
	l = lo.u.n < 0 ? lo.u.n + len : lo.u.n;
	r = hi.u.n < 0 ? hi.u.n + len : hi.u.n;
	if (!n->flag)
		r += 1;
	l = l < 0 ? 0 : l > len ? len : l;
	r = r < 0 ? 0 : r > len ? len : r;
	from = (size_t) l;
	to = r > l ? (size_t) r : from;
	if (take_steps(ev, n, to - from) < 0)
		return -1;
	out->t = V_ARR;
	out->u.arr.n = to - from;
	out->u.arr.v = scratch(ev, n, sizeof(groq_value) * (to - from));
	if (!out->u.arr.v)
		return -1;
	for (size_t i = from; i < to; i++)
		groq_array_at(base, i, &out->u.arr.v[i - from]);
	return 0;
}

/* base[cond]: the elements for which cond (with @ = element) is true. */
static int
filter(groq_eval *ev, const groq_node *n, const groq_value *base,
	   groq_value *out)
{
	size_t len, k = 0;
	groq_value *v;

	if (!groq_is_array(base))
	{
		*out = *base;
		return 0;
	}
	len = groq_array_len(base);
	v = scratch(ev, n, sizeof(*v) * len);
	if (!v)
		return -1;
	for (size_t i = 0; i < len; i++)
	{
		groq_value e, c;

		groq_array_at(base, i, &e);
		if (groq_eval_node(ev, n->b, &e, &c) < 0)
			return -1;
		if (c.t == V_BOOL && c.b)
			v[k++] = e;
	}
	out->t = V_ARR;
	out->u.arr.v = v;
	out->u.arr.n = k;
	return 0;
}

static int
map(groq_eval *ev, const groq_node *n, const groq_value *base, groq_value *out)
{
	size_t len, k = 0, cap;
	groq_value *v;

	out->t = V_NULL;
	if (!groq_is_array(base))
		return 0;
	len = groq_array_len(base);
	cap = len;
	v = scratch(ev, n, sizeof(*v) * (cap ? cap : 1));
	if (!v)
		return -1;
	for (size_t i = 0; i < len; i++)
	{
		groq_value e, r;

		groq_array_at(base, i, &e);
		if (groq_eval_node(ev, n->b, &e, &r) < 0)
			return -1;
		if (n->op == N_MAP)
		{
			v[k++] = r;
			continue;
		}
		if (!groq_is_array(&r))
			continue;
		{
			size_t rl = groq_array_len(&r);

			if (take_steps(ev, n, rl) < 0)
				return -1;
			if (k + rl > cap)
			{
				size_t ncap = (k + rl) * 2;
				groq_value *nv = scratch(ev, n, sizeof(*nv) * ncap);

				if (!nv)
					return -1;
				memcpy(nv, v, sizeof(*v) * k);
				v = nv;
				cap = ncap;
			}
			for (size_t j = 0; j < rl; j++)
				groq_array_at(&r, j, &v[k++]);
		}
	}
	out->t = V_ARR;
	out->u.arr.v = v;
	out->u.arr.n = k;
	return 0;
}

static int
eval_array(groq_eval *ev, const groq_node *n, const groq_value *self,
		   groq_value *out)
{
	groq_value *parts = scratch(ev, n, sizeof(*parts) * (n->nargs + 1));
	size_t total = 0, k = 0;

	if (!parts)
		return -1;
	for (uint32_t i = 0; i < n->nargs; i++)
	{
		const groq_node *e = n->args[i];

		if (groq_eval_node(ev, e->op == N_SPLAT ? e->a : e, self, &parts[i]) <
			0)
			return -1;
		if (e->op != N_SPLAT)
			total++;
		else if (groq_is_array(&parts[i]))
			total += groq_array_len(&parts[i]);
	}
	if (take_steps(ev, n, total) < 0)
		return -1;
	out->t = V_ARR;
	out->u.arr.v = scratch(ev, n, sizeof(groq_value) * (total + 1));
	out->u.arr.n = total;
	if (!out->u.arr.v)
		return -1;
	for (uint32_t i = 0; i < n->nargs; i++)
	{
		if (n->args[i]->op != N_SPLAT)
			out->u.arr.v[k++] = parts[i];
		else if (groq_is_array(&parts[i]))
		{
			size_t len = groq_array_len(&parts[i]);

			for (size_t j = 0; j < len; j++)
				groq_array_at(&parts[i], j, &out->u.arr.v[k++]);
		}
	}
	return 0;
}

static int
eval_object(groq_eval *ev, const groq_node *n, const groq_value *self,
			groq_value *out)
{
	groq_value *parts = scratch(ev, n, sizeof(*parts) * (n->nargs + 1));
	size_t total = 0, k = 0;
	groq_kv *kv;

	if (!parts)
		return -1;
	for (uint32_t i = 0; i < n->nargs; i++)
	{
		const groq_node *e = n->args[i];

		if (eval_base(ev, e->a, self, &parts[i]) < 0)
			return -1;
		if (e->op == N_KV)
			total++;
		else if (groq_is_object(&parts[i]))
			total += object_size(&parts[i]);
	}
	if (take_steps(ev, n, total) < 0)
		return -1;
	kv = scratch(ev, n, sizeof(*kv) * (total + 1));
	if (!kv)
		return -1;
	for (uint32_t i = 0; i < n->nargs; i++)
	{
		const groq_node *e = n->args[i];

		if (e->op == N_KV)
		{
			kv[k].k = e->u.str.s;
			kv[k].klen = e->u.str.len;
			kv[k].v = parts[i];
			k++;
		}
		else if (groq_is_object(&parts[i]))
			k += object_copy(&parts[i], kv + k);
	}
	out->t = V_OBJ;
	out->u.obj.kv = kv;
	out->u.obj.n = k;
	return 0;
}

static int
eval_in(groq_eval *ev, const groq_node *n, const groq_value *self,
		groq_value *out)
{
	groq_value l, r;

	out->t = V_NULL;
	if (groq_eval_node(ev, n->a, self, &l) < 0)
		return -1;
	if (n->b->op == N_RANGE)
	{
		groq_value lo, hi;
		int cl, ch;

		if (groq_eval_node(ev, n->b->a, self, &lo) < 0 ||
			groq_eval_node(ev, n->b->b, self, &hi) < 0)
			return -1;
		if (groq_compare(&lo, &hi) == 2)
			return 0;
		cl = groq_compare(&l, &lo);
		ch = groq_compare(&l, &hi);
		if (cl == 2 || ch == 2)
			return 0;
		set_bool(out, !(cl < 0 || ch > 0 || (n->b->flag && ch == 0)));
		return 0;
	}
	if (groq_eval_node(ev, n->b, self, &r) < 0)
		return -1;
	if (groq_is_array(&r))
	{
		size_t len = groq_array_len(&r);

		if (take_steps(ev, n, len) < 0)
			return -1;
		set_bool(out, groq_array_contains(&r, &l));
		return 0;
	}
	if (r.t == V_PATH)
	{
		if (l.t == V_STR || l.t == V_PATH)
			set_bool(out, groq_path_match(r.u.str.s, r.u.str.len, l.u.str.s,
										  l.u.str.len));
		else
			set_bool(out, false);
	}
	return 0;
}

/* Adds the strings of v (a string, or an array's strings) to *list. */
static int
collect_strings(groq_eval *ev, const groq_node *n, const groq_value *v,
				groq_strref **list, size_t *count, bool *non_string)
{
	size_t len;

	*non_string = false;
	*count = 0;
	if (v->t == V_STR)
	{
		*list = scratch(ev, n, sizeof(**list));
		if (!*list)
			return -1;
		(*list)[0].s = v->u.str.s;
		(*list)[0].len = v->u.str.len;
		*count = 1;
		return 0;
	}
	if (!groq_is_array(v))
		return 0;
	len = groq_array_len(v);
	if (take_steps(ev, n, len) < 0)
		return -1;
	*list = scratch(ev, n, sizeof(**list) * (len + 1));
	if (!*list)
		return -1;
	for (size_t i = 0; i < len; i++)
	{
		groq_value e;

		groq_array_at(v, i, &e);
		if (e.t != V_STR)
		{
			*non_string = true;
			continue;
		}
		(*list)[*count].s = e.u.str.s;
		(*list)[*count].len = e.u.str.len;
		(*count)++;
	}
	return 0;
}

static int
eval_match(groq_eval *ev, const groq_node *n, const groq_value *self,
		   groq_value *out)
{
	groq_value l, r;
	groq_strref *texts = NULL, *pats = NULL;
	size_t nt, np;
	bool odd;
	int m;

	if (groq_eval_node(ev, n->a, self, &l) < 0 ||
		groq_eval_node(ev, n->b, self, &r) < 0)
		return -1;
	if (collect_strings(ev, n, &l, &texts, &nt, &odd) < 0 ||
		collect_strings(ev, n, &r, &pats, &np, &odd) < 0)
		return -1;
	/* the spec: a pattern array with a non-string is no match */
	if (odd)
	{
		set_bool(out, false);
		return 0;
	}
	m = groq_text_match(ev, n, texts, nt, pats, np);
	if (m < 0)
		return -1;
	set_bool(out, m == 1);
	return 0;
}

int
groq_eval_node(groq_eval *ev, const groq_node *n, const groq_value *self,
			   groq_value *out)
{
	groq_value a, b;

	if (!ev->steps_left)
		return groq_eval_out_of_steps(ev, n);
	ev->steps_left--;
	memset(out, 0, sizeof(*out));
	switch ((groq_op) n->op)
	{
		case N_NULL:
		case N_RANGE:
		case N_PAIR:
		case N_KV:
		case N_SPLAT:
			return 0;
		case N_TRUE:
			set_bool(out, true);
			return 0;
		case N_FALSE:
			set_bool(out, false);
			return 0;
		case N_NUM:
			set_num(out, n->u.num);
			return 0;
		case N_STR:
			out->t = V_STR;
			out->u.str.s = n->u.str.s;
			out->u.str.len = n->u.str.len;
			return 0;
		case N_PARAM:
		{
			json_t *v =
				ev->params && json_is_object(ev->params)
					? json_object_getn(ev->params, n->u.str.s, n->u.str.len)
					: NULL;

			if (!v)
			{
				groq_seterr(ev->err, n->pos, "undefined parameter $%.*s",
							(int) (n->u.str.len > 100 ? 100 : n->u.str.len),
							n->u.str.s);
				return -1;
			}
			groq_value_from_json(v, out);
			return 0;
		}
		case N_THIS:
			*out = *self;
			return 0;
		case N_ATTR:
			if (eval_base(ev, n->a, self, &a) < 0)
				return -1;
			get_attr(&a, n->u.str.s, n->u.str.len, out);
			return 0;
		case N_ELEM:
			if (eval_base(ev, n->a, self, &a) < 0)
				return -1;
			element(&a, n->u.num, out);
			return 0;
		case N_SLICE:
			if (eval_base(ev, n->a, self, &a) < 0)
				return -1;
			return slice(ev, n, &a, self, out);
		case N_FILTER:
			if (eval_base(ev, n->a, self, &a) < 0)
				return -1;
			return filter(ev, n, &a, out);
		case N_BRACKET:
			if (eval_base(ev, n->a, self, &a) < 0 ||
				groq_eval_node(ev, n->b, self, &b) < 0)
				return -1;
			if (b.t == V_NUM)
				element(&a, b.u.n, out);
			else if (b.t == V_STR)
				get_attr(&a, b.u.str.s, b.u.str.len, out);
			else if (!groq_is_array(&a) || (b.t == V_BOOL && b.b))
				*out = a;
			else
				out->t = V_ARR; /* no element passes a constant non-true */
			return 0;
		case N_COERCE:
			if (eval_base(ev, n->a, self, &a) < 0)
				return -1;
			if (groq_is_array(&a))
				*out = a;
			return 0;
		case N_MAP:
		case N_FLATMAP:
			if (eval_base(ev, n->a, self, &a) < 0)
				return -1;
			return map(ev, n, &a, out);
		case N_DEREF:
			/* the target is another document: unknown here */
			return 0;
		case N_ARRAY:
			return eval_array(ev, n, self, out);
		case N_OBJECT:
			return eval_object(ev, n, self, out);
		case N_AND:
		case N_OR:
		{
			bool stop = n->op == N_OR; /* the value that decides */

			if (groq_eval_node(ev, n->a, self, &a) < 0)
				return -1;
			if (a.t == V_BOOL && a.b == stop)
			{
				set_bool(out, stop);
				return 0;
			}
			if (groq_eval_node(ev, n->b, self, &b) < 0)
				return -1;
			if (b.t == V_BOOL && b.b == stop)
				set_bool(out, stop);
			else if (a.t == V_BOOL && b.t == V_BOOL)
				set_bool(out, !stop);
			return 0;
		}
		case N_NOT:
			if (groq_eval_node(ev, n->a, self, &a) < 0)
				return -1;
			if (a.t == V_BOOL)
				set_bool(out, !a.b);
			return 0;
		case N_EQ:
		case N_NE:
			if (groq_eval_node(ev, n->a, self, &a) < 0 ||
				groq_eval_node(ev, n->b, self, &b) < 0)
				return -1;
			set_bool(out, groq_equal(&a, &b) == (n->op == N_EQ));
			return 0;
		case N_LT:
		case N_LE:
		case N_GT:
		case N_GE:
		{
			int c;

			if (groq_eval_node(ev, n->a, self, &a) < 0 ||
				groq_eval_node(ev, n->b, self, &b) < 0)
				return -1;
			c = groq_compare(&a, &b);
			if (c == 2)
				return 0;
			set_bool(out, n->op == N_LT	  ? c < 0
						  : n->op == N_LE ? c <= 0
						  : n->op == N_GT ? c > 0
										  : c >= 0);
			return 0;
		}
		case N_IN:
			return eval_in(ev, n, self, out);
		case N_MATCH:
			return eval_match(ev, n, self, out);
		case N_ADD:
		case N_SUB:
		case N_MUL:
		case N_DIV:
		case N_MOD:
		case N_POW:
			if (groq_eval_node(ev, n->a, self, &a) < 0 ||
				groq_eval_node(ev, n->b, self, &b) < 0)
				return -1;
			return groq_arith(ev, n, n->op, &a, &b, out);
		case N_NEG:
		case N_POS:
			if (groq_eval_node(ev, n->a, self, &a) < 0)
				return -1;
			if (a.t == V_NUM)
				set_num(out, n->op == N_NEG ? -a.u.n : a.u.n);
			return 0;
		case N_CALL:
			return groq_call(ev, n, self, out);
	}
	return 0;
}
