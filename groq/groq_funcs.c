/*
 * groq_funcs.c: the GROQ functions a subscription filter may call.
 *
 * Functions that need other documents, the clock or delta mode (now(),
 * dateTime::now(), before(), after(), geo::*, pt::*, sanity::*) are not
 * in the table, so the parser refuses them as unknown.
 */
#include "groq_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const groq_fninfo global_fns[] = {
	{"coalesce", F_COALESCE, 0, -1},
	{"count", F_COUNT, 1, 1},
	{"dateTime", F_DATETIME, 1, 1},
	{"defined", F_DEFINED, 1, 1},
	{"length", F_LENGTH, 1, 1},
	{"lower", F_LOWER, 1, 1},
	{"path", F_PATH, 1, 1},
	{"references", F_REFERENCES, 1, -1},
	{"round", F_ROUND, 1, 2},
	{"select", F_SELECT, 0, -1},
	{"string", F_STRING, 1, 1},
	{"upper", F_UPPER, 1, 1},
	{NULL, 0, 0, 0},
};

static const groq_fninfo array_fns[] = {
	{"compact", F_ARRAY_COMPACT, 1, 1},
	{"intersects", F_ARRAY_INTERSECTS, 2, 2},
	{"join", F_ARRAY_JOIN, 2, 2},
	{"unique", F_ARRAY_UNIQUE, 1, 1},
	{NULL, 0, 0, 0},
};

static const groq_fninfo math_fns[] = {
	{"avg", F_MATH_AVG, 1, 1}, {"max", F_MATH_MAX, 1, 1},
	{"min", F_MATH_MIN, 1, 1}, {"sum", F_MATH_SUM, 1, 1},
	{NULL, 0, 0, 0},
};

static const groq_fninfo string_fns[] = {
	{"split", F_STRING_SPLIT, 2, 2},
	{"startsWith", F_STRING_STARTSWITH, 2, 2},
	{NULL, 0, 0, 0},
};

static bool
word_eq(const char *s, size_t len, const char *w)
{
	return len == strlen(w) && !memcmp(s, w, len);
}

const groq_fninfo *
groq_fn_lookup(const char *ns, size_t nslen, const char *name, size_t len)
{
	const groq_fninfo *table;

	if (!ns || word_eq(ns, nslen, "global"))
		table = global_fns;
	else if (word_eq(ns, nslen, "array"))
		table = array_fns;
	else if (word_eq(ns, nslen, "math"))
		table = math_fns;
	else if (word_eq(ns, nslen, "string"))
		table = string_fns;
	else
		return NULL;
	for (; table->name; table++)
		if (word_eq(name, len, table->name))
			return table;
	return NULL;
}

static void *
scratch(groq_eval *ev, const groq_node *n, size_t size)
{
	void *p = groq_arena_alloc(ev->arena, size);

	if (!p)
		groq_eval_abort(ev, n, "evaluation memory limit exceeded");
	return p;
}

static int
steps(groq_eval *ev, const groq_node *n, size_t k)
{
	if (ev->steps_left < k)
		return groq_eval_out_of_steps(ev, n);
	ev->steps_left -= k;
	return 0;
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
	out->t = isfinite(d) ? V_NUM : V_NULL;
	out->u.n = d;
}

static int
set_str(groq_eval *ev, const groq_node *n, groq_value *out, const char *s,
		size_t len)
{
	char *c = scratch(ev, n, len + 1);

	if (!c)
		return -1;
	memcpy(c, s, len);
	c[len] = '\0';
	out->t = V_STR;
	out->u.str.s = c;
	out->u.str.len = len;
	return 0;
}

/* global::string() into out; out->t stays V_NULL for other types. */
static int
to_string(groq_eval *ev, const groq_node *n, const groq_value *v,
		  groq_value *out)
{
	char buf[48];

	out->t = V_NULL;
	switch (v->t)
	{
		case V_BOOL:
			out->t = V_STR;
			out->u.str.s = v->b ? "true" : "false";
			out->u.str.len = v->b ? 4 : 5;
			return 0;
		case V_STR:
			*out = *v;
			return 0;
		case V_NUM:
			return set_str(ev, n, out, buf, groq_format_number(v->u.n, buf));
		case V_DATETIME:
			return set_str(
				ev, n, out, buf,
				groq_format_datetime(v->u.dt.sec, v->u.dt.nsec, buf));
		default:
			return 0;
	}
}

/*
 * num rounded to prec decimals as JavaScript's Number#toFixed does it: on
 * the exact binary value, ties away from zero.  %.1100f prints any double
 * exactly, so the decimal rounding below is exact.
 */
static double
round_to(double num, int prec)
{
	enum
	{
		DIGITS = 1100
	};
	char buf[DIGITS + 32], *dot, *end;

	if (prec == 0)
		return round(num);
	/* toFixed() prints these with an exponent: Number() gives num back */
	if (fabs(num) >= 1e21 || prec > 100)
		return num;
	snprintf(buf + 1, sizeof(buf) - 1, "%.*f", DIGITS, fabs(num));
	buf[0] = '0'; /* room for a carry */
	dot = strchr(buf, '.');
	end = dot + 1 + prec;
	if (*end >= '5')
	{
		char *q = end - 1;

		for (;; q--)
		{
			if (*q == '.')
				continue;
			if (*q == '9')
			{
				*q = '0';
				continue;
			}
			(*q)++;
			break;
		}
	}
	*end = '\0';
	return num < 0 ? -strtod(buf, NULL) : strtod(buf, NULL);
}

static bool
has_reference(groq_eval *ev, const groq_value *v, const groq_strref *ids,
			  size_t nids, unsigned depth, int *err)
{
	if (depth > ev->max_doc_depth)
	{
		groq_eval_abort(ev, NULL, "document nested too deeply");
		*err = -1;
		return false;
	}
	if (!ev->steps_left)
	{
		groq_eval_out_of_steps(ev, NULL);
		*err = -1;
		return false;
	}
	ev->steps_left--;
	if (groq_is_array(v))
	{
		size_t len = groq_array_len(v);

		for (size_t i = 0; i < len && !*err; i++)
		{
			groq_value e;

			groq_array_at(v, i, &e);
			if (has_reference(ev, &e, ids, nids, depth + 1, err))
				return true;
		}
		return false;
	}
	if (v->t == V_JOBJ)
	{
		json_t *ref = json_object_get(v->u.j, "_ref");
		const char *k;
		json_t *j;

		if (ref)
		{
			if (!json_is_string(ref))
				return false;
			for (size_t i = 0; i < nids; i++)
				if (ids[i].len == json_string_length(ref) &&
					!memcmp(ids[i].s, json_string_value(ref), ids[i].len))
					return true;
			return false;
		}
		json_object_foreach (v->u.j, k, j)
		{
			groq_value e;

			groq_value_from_json(j, &e);
			if (has_reference(ev, &e, ids, nids, depth + 1, err))
				return true;
			if (*err)
				return false;
		}
		return false;
	}
	if (v->t == V_OBJ)
	{
		groq_value ref = {0};

		for (size_t i = v->u.obj.n; i-- > 0;)
			if (v->u.obj.kv[i].klen == 4 &&
				!memcmp(v->u.obj.kv[i].k, "_ref", 4))
			{
				ref = v->u.obj.kv[i].v;
				if (ref.t != V_STR)
					return false;
				for (size_t j = 0; j < nids; j++)
					if (ids[j].len == ref.u.str.len &&
						!memcmp(ids[j].s, ref.u.str.s, ids[j].len))
						return true;
				return false;
			}
		for (size_t i = 0; i < v->u.obj.n && !*err; i++)
			if (has_reference(ev, &v->u.obj.kv[i].v, ids, nids, depth + 1, err))
				return true;
	}
	return false;
}

static int
fn_references(groq_eval *ev, const groq_node *n, const groq_value *self,
			  groq_value *out)
{
	groq_strref *ids = NULL;
	size_t nids = 0, cap = 0;
	int err = 0;
	bool found;

	for (uint32_t i = 0; i < n->nargs; i++)
	{
		groq_value v;
		size_t len;

		if (groq_eval_node(ev, n->args[i], self, &v) < 0)
			return -1;
		len = v.t == V_STR ? 1 : groq_is_array(&v) ? groq_array_len(&v) : 0;
		if (steps(ev, n, len) < 0)
			return -1;
		if (nids + len > cap)
		{
			size_t ncap = (nids + len) * 2;
			groq_strref *nl = scratch(ev, n, sizeof(*nl) * ncap);

			if (!nl)
				return -1;
			if (nids)
				memcpy(nl, ids, sizeof(*ids) * nids);
			ids = nl;
			cap = ncap;
		}
		if (v.t == V_STR)
		{
			ids[nids].s = v.u.str.s;
			ids[nids++].len = v.u.str.len;
			continue;
		}
		for (size_t k = 0; k < len; k++)
		{
			groq_value e;

			groq_array_at(&v, k, &e);
			if (e.t == V_STR)
			{
				ids[nids].s = e.u.str.s;
				ids[nids++].len = e.u.str.len;
			}
		}
	}
	if (!nids)
	{
		set_bool(out, false);
		return 0;
	}
	found = has_reference(ev, self, ids, nids, 0, &err);
	if (err)
	{
		ev->err->pos = n->pos;
		return -1;
	}
	set_bool(out, found);
	return 0;
}

/* math::sum/avg/min/max: nulls ignored, any other non-number gives null. */
static int
fn_math(groq_eval *ev, const groq_node *n, const groq_value *arr,
		groq_value *out)
{
	size_t len, count = 0;
	double acc = 0;

	out->t = V_NULL;
	if (!groq_is_array(arr))
		return 0;
	len = groq_array_len(arr);
	if (steps(ev, n, len) < 0)
		return -1;
	for (size_t i = 0; i < len; i++)
	{
		groq_value e;

		groq_array_at(arr, i, &e);
		if (e.t == V_NULL)
			continue;
		if (e.t != V_NUM)
			return 0;
		if (n->u.fn == F_MATH_SUM || n->u.fn == F_MATH_AVG)
			acc += e.u.n;
		else if (!count || (n->u.fn == F_MATH_MIN ? e.u.n < acc : e.u.n > acc))
			acc = e.u.n;
		count++;
	}
	if (n->u.fn == F_MATH_SUM)
		set_num(out, acc);
	else if (count)
		set_num(out, n->u.fn == F_MATH_AVG ? acc / (double) count : acc);
	return 0;
}

static int
new_array(groq_eval *ev, const groq_node *n, size_t cap, groq_value *out)
{
	out->t = V_ARR;
	out->u.arr.n = 0;
	out->u.arr.v = scratch(ev, n, sizeof(groq_value) * (cap ? cap : 1));
	return out->u.arr.v ? 0 : -1;
}

static int
fn_split(groq_eval *ev, const groq_node *n, const groq_value *s,
		 const groq_value *sep, groq_value *out)
{
	const char *p = s->u.str.s, *end = s->u.str.s + s->u.str.len;
	size_t cap = sep->u.str.len ? 1 : s->u.str.len;

	/* count the pieces first */
	if (sep->u.str.len)
		for (const char *q = p;
			 (q = memmem(q, end - q, sep->u.str.s, sep->u.str.len));
			 q += sep->u.str.len)
			cap++;
	if (steps(ev, n, cap) < 0 || new_array(ev, n, cap, out) < 0)
		return -1;
	if (!sep->u.str.len)
	{
		while (p < end)
		{
			uint32_t cp;
			size_t l = groq_utf8_decode(p, &cp);
			groq_value *e = &out->u.arr.v[out->u.arr.n++];

			e->t = V_STR;
			e->u.str.s = p;
			e->u.str.len = l;
			p += l;
		}
		return 0;
	}
	for (;;)
	{
		const char *q = memmem(p, end - p, sep->u.str.s, sep->u.str.len);
		groq_value *e = &out->u.arr.v[out->u.arr.n++];

		e->t = V_STR;
		e->u.str.s = p;
		e->u.str.len = (q ? q : end) - p;
		if (!q)
			return 0;
		p = q + sep->u.str.len;
	}
}

static int
fn_join(groq_eval *ev, const groq_node *n, const groq_value *arr,
		const groq_value *sep, groq_value *out)
{
	size_t len = groq_array_len(arr), total = 0, k = 0;
	groq_value *parts;
	char *s;

	if (steps(ev, n, len) < 0)
		return -1;
	parts = scratch(ev, n, sizeof(*parts) * (len + 1));
	if (!parts)
		return -1;
	for (size_t i = 0; i < len; i++)
	{
		groq_value e;

		groq_array_at(arr, i, &e);
		if (to_string(ev, n, &e, &parts[i]) < 0)
			return -1;
		if (parts[i].t != V_STR)
			return 0;
		total += parts[i].u.str.len + (i ? sep->u.str.len : 0);
	}
	s = scratch(ev, n, total + 1);
	if (!s)
		return -1;
	for (size_t i = 0; i < len; i++)
	{
		if (i)
		{
			memcpy(s + k, sep->u.str.s, sep->u.str.len);
			k += sep->u.str.len;
		}
		memcpy(s + k, parts[i].u.str.s, parts[i].u.str.len);
		k += parts[i].u.str.len;
	}
	s[k] = '\0';
	out->t = V_STR;
	out->u.str.s = s;
	out->u.str.len = k;
	return 0;
}

/* Values the spec compares for uniqueness; others are always unique. */
static bool
comparable(const groq_value *v)
{
	return v->t == V_NULL || v->t == V_BOOL || v->t == V_NUM || v->t == V_STR ||
		   v->t == V_DATETIME;
}

int
groq_call(groq_eval *ev, const groq_node *n, const groq_value *self,
		  groq_value *out)
{
	groq_value a = {0}, b = {0};

	out->t = V_NULL;
	switch ((groq_fn) n->u.fn)
	{
		case F_COALESCE:
			for (uint32_t i = 0; i < n->nargs; i++)
			{
				if (groq_eval_node(ev, n->args[i], self, out) < 0)
					return -1;
				if (out->t != V_NULL)
					return 0;
			}
			return 0;
		case F_SELECT:
			for (uint32_t i = 0; i < n->nargs; i++)
			{
				const groq_node *arg = n->args[i];

				if (arg->op != N_PAIR)
					return groq_eval_node(ev, arg, self, out);
				if (groq_eval_node(ev, arg->a, self, &a) < 0)
					return -1;
				if (a.t == V_BOOL && a.b)
					return groq_eval_node(ev, arg->b, self, out);
			}
			return 0;
		case F_REFERENCES:
			return fn_references(ev, n, self, out);
		default:
			break;
	}
	/* the rest evaluate their one or two arguments first */
	if (groq_eval_node(ev, n->args[0], self, &a) < 0)
		return -1;
	if (n->nargs > 1 && groq_eval_node(ev, n->args[1], self, &b) < 0)
		return -1;
	switch ((groq_fn) n->u.fn)
	{
		case F_COUNT:
			if (groq_is_array(&a))
				set_num(out, (double) groq_array_len(&a));
			return 0;
		case F_DEFINED:
			set_bool(out, a.t != V_NULL);
			return 0;
		case F_LENGTH:
			if (groq_is_array(&a))
				set_num(out, (double) groq_array_len(&a));
			else if (a.t == V_STR)
			{
				size_t cps = 0;

				for (size_t i = 0; i < a.u.str.len; i++)
					cps += ((unsigned char) a.u.str.s[i] & 0xC0) != 0x80;
				set_num(out, (double) cps);
			}
			return 0;
		case F_LOWER:
		case F_UPPER:
			if (a.t == V_STR)
			{
				char *s = groq_case_map(ev->arena, a.u.str.s, a.u.str.len,
										n->u.fn == F_UPPER, &out->u.str.len);

				if (!s)
					return groq_eval_abort(ev, n,
										   "evaluation memory limit exceeded");
				out->t = V_STR;
				out->u.str.s = s;
			}
			return 0;
		case F_STRING:
			return to_string(ev, n, &a, out);
		case F_PATH:
			if (a.t == V_STR || a.t == V_PATH)
			{
				*out = a;
				out->t = V_PATH;
			}
			return 0;
		case F_DATETIME:
			if (a.t == V_DATETIME)
				*out = a;
			else if (a.t == V_STR &&
					 groq_parse_datetime(a.u.str.s, a.u.str.len, &out->u.dt.sec,
										 &out->u.dt.nsec))
				out->t = V_DATETIME;
			return 0;
		case F_ROUND:
			if (a.t != V_NUM)
				return 0;
			if (n->nargs == 1)
				set_num(out, round(a.u.n));
			else if (b.t == V_NUM && b.u.n >= 0 && b.u.n == floor(b.u.n))
				set_num(out,
						round_to(a.u.n, b.u.n > 1000 ? 1000 : (int) b.u.n));
			return 0;
		case F_ARRAY_COMPACT:
		{
			size_t len;

			if (!groq_is_array(&a))
				return 0;
			len = groq_array_len(&a);
			if (steps(ev, n, len) < 0 || new_array(ev, n, len, out) < 0)
				return -1;
			for (size_t i = 0; i < len; i++)
			{
				groq_array_at(&a, i, &out->u.arr.v[out->u.arr.n]);
				if (out->u.arr.v[out->u.arr.n].t != V_NULL)
					out->u.arr.n++;
			}
			return 0;
		}
		case F_ARRAY_UNIQUE:
		{
			size_t len;

			if (!groq_is_array(&a))
				return 0;
			len = groq_array_len(&a);
			if (steps(ev, n, len) < 0 || new_array(ev, n, len, out) < 0)
				return -1;
			for (size_t i = 0; i < len; i++)
			{
				groq_value e;
				bool dup = false;

				groq_array_at(&a, i, &e);
				if (comparable(&e))
				{
					if (steps(ev, n, out->u.arr.n) < 0)
						return -1;
					for (size_t k = 0; k < out->u.arr.n && !dup; k++)
						dup = groq_equal(&e, &out->u.arr.v[k]);
				}
				if (!dup)
					out->u.arr.v[out->u.arr.n++] = e;
			}
			return 0;
		}
		case F_ARRAY_INTERSECTS:
		{
			size_t la, lb;

			if (!groq_is_array(&a) || !groq_is_array(&b))
				return 0;
			la = groq_array_len(&a);
			lb = groq_array_len(&b);
			for (size_t i = 0; i < la; i++)
			{
				groq_value x;

				if (steps(ev, n, lb + 1) < 0)
					return -1;
				groq_array_at(&a, i, &x);
				if (groq_array_contains(&b, &x))
				{
					set_bool(out, true);
					return 0;
				}
			}
			set_bool(out, false);
			return 0;
		}
		case F_ARRAY_JOIN:
			if (!groq_is_array(&a) || b.t != V_STR)
				return 0;
			return fn_join(ev, n, &a, &b, out);
		case F_MATH_AVG:
		case F_MATH_MAX:
		case F_MATH_MIN:
		case F_MATH_SUM:
			return fn_math(ev, n, &a, out);
		case F_STRING_SPLIT:
			if (a.t != V_STR || b.t != V_STR)
				return 0;
			return fn_split(ev, n, &a, &b, out);
		case F_STRING_STARTSWITH:
			if (a.t != V_STR || b.t != V_STR)
				return 0;
			set_bool(out, b.u.str.len <= a.u.str.len &&
							  !memcmp(a.u.str.s, b.u.str.s, b.u.str.len));
			return 0;
		default:
			return 0;
	}
}
