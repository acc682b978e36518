/*
 * groq_parse.c: tokens to the syntax tree of `*[FILTER]`.
 *
 * A Pratt parser over the precedence table of the GROQ spec (section
 * "Precedence and associativity").  Recursion is bounded twice: a depth
 * counter on parse_expr() and the height of every node built (mk()), so
 * every later walk of the tree (validation, evaluation, analysis) recurses
 * at most max_depth deep.
 *
 * Chains of traversals (a.b[0][x > 1][].c) are folded right to left with
 * the spec's combination rules (plain / array / array-source /
 * array-target), which is what gives `a[].b` its map semantics.
 */
#include "groq_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct parser
{
	groq_filter *f;
	const groq_token *toks;
	size_t i;
	unsigned depth;
	groq_error *err;
	bool failed;
	const groq_token **params; /* distinct $names seen, in order */
	size_t nparams;
} parser;

static groq_node *parse_expr(parser *p, int minbp);

static const groq_token *
peek(parser *p)
{
	return &p->toks[p->i];
}

static const groq_token *
peek2(parser *p)
{
	return p->toks[p->i].t == T_EOF ? &p->toks[p->i] : &p->toks[p->i + 1];
}

static const groq_token *
next(parser *p)
{
	const groq_token *t = &p->toks[p->i];

	if (t->t != T_EOF)
		p->i++;
	return t;
}

static void *
fail(parser *p, size_t pos, const char *msg)
{
	if (!p->failed)
		groq_seterr(p->err, pos, "%s", msg);
	p->failed = true;
	return NULL;
}

static bool
is_word(const groq_token *t, const char *w)
{
	return t->t == T_IDENT && t->len == strlen(w) && !memcmp(t->s, w, t->len);
}

static bool
expect(parser *p, groq_tok t, const char *what)
{
	if (peek(p)->t != t)
	{
		char msg[80];

		snprintf(msg, sizeof(msg), "expected %s", what);
		fail(p, peek(p)->pos, msg);
		return false;
	}
	next(p);
	return true;
}

static unsigned
height(const groq_node *n)
{
	return n ? n->height : 0;
}

static groq_node *
mk(parser *p, groq_op op, size_t pos, groq_node *a, groq_node *b, groq_node *c)
{
	groq_node *n = groq_arena_alloc(&p->f->arena, sizeof(*n));
	unsigned h = height(a);

	if (!n)
		return fail(p, pos, "out of memory");
	memset(n, 0, sizeof(*n));
	if (height(b) > h)
		h = height(b);
	if (height(c) > h)
		h = height(c);
	if (h + 1 > p->f->limits.max_depth)
		return fail(p, pos, "query nested too deeply");
	n->op = op;
	n->pos = (uint32_t) pos;
	n->height = (uint16_t) (h + 1);
	n->a = a;
	n->b = b;
	n->c = c;
	return n;
}

/* Gives n the argument list args[0..nargs), copied into the arena. */
static bool
set_args(parser *p, groq_node *n, groq_node **args, size_t nargs)
{
	unsigned h = 0;

	n->args = groq_arena_alloc(&p->f->arena, sizeof(*args) * (nargs + 1));
	if (!n->args)
		return fail(p, n->pos, "out of memory"), false;
	for (size_t k = 0; k < nargs; k++)
	{
		n->args[k] = args[k];
		if (height(args[k]) > h)
			h = height(args[k]);
	}
	n->nargs = (uint32_t) nargs;
	if (h + 1 > p->f->limits.max_depth)
		return fail(p, n->pos, "query nested too deeply"), false;
	if (h + 1 > n->height)
		n->height = (uint16_t) (h + 1);
	return true;
}

/* Ranges live only after `in` or in slices, pairs only in select(). */
static groq_node *
operand(parser *p, groq_node *n)
{
	if (!n)
		return NULL;
	if (n->op == N_RANGE)
		return fail(p, n->pos,
					"a range (a..b) is only allowed after 'in' or in a slice");
	if (n->op == N_PAIR)
		return fail(p, n->pos, "a pair (a => b) is only allowed in select()");
	return n;
}

static bool
note_param(parser *p, const groq_token *t)
{
	for (size_t k = 0; k < p->nparams; k++)
		if (p->params[k]->len == t->len &&
			!memcmp(p->params[k]->s, t->s, t->len))
			return true;
	/* at most one per token, so the array never overflows */
	p->params[p->nparams++] = t;
	return true;
}

/*
 * Whether n can be evaluated without a document (literals, $params and
 * operators over them): such a bracket is an attribute or element access
 * rather than a filter (spec: "Disambiguating square bracket traversal").
 */
static bool
is_constant(const groq_node *n, bool *uses_params)
{
	switch (n->op)
	{
		case N_NULL:
		case N_TRUE:
		case N_FALSE:
		case N_NUM:
		case N_STR:
			return true;
		case N_PARAM:
			*uses_params = true;
			return true;
		case N_NEG:
		case N_POS:
		case N_NOT:
			return is_constant(n->a, uses_params);
		case N_AND:
		case N_OR:
		case N_EQ:
		case N_NE:
		case N_LT:
		case N_LE:
		case N_GT:
		case N_GE:
		case N_IN:
		case N_MATCH:
		case N_RANGE:
		case N_ADD:
		case N_SUB:
		case N_MUL:
		case N_DIV:
		case N_MOD:
		case N_POW:
			return is_constant(n->a, uses_params) &&
				   is_constant(n->b, uses_params);
		default:
			return false;
	}
}

/* Evaluates a constant without $params at compile time. */
static bool
const_eval(parser *p, const groq_node *n, groq_value *out, groq_arena *tmp)
{
	groq_eval ev = {0};
	groq_value self = {.t = V_NULL};

	ev.f = p->f;
	ev.arena = tmp;
	ev.steps_left = p->f->limits.max_steps;
	ev.max_doc_depth = p->f->limits.max_doc_depth;
	ev.err = p->err;
	if (groq_eval_node(&ev, n, &self, out) < 0)
	{
		p->failed = true;
		return false;
	}
	return true;
}

/* ---- traversal chains ---- */

typedef enum
{
	I_ATTR,
	I_DEREF,
	I_ELEM,
	I_SLICE,
	I_FILTER,
	I_BRACKET,
	I_COERCE,
	I_IDENTITY
} item_kind;

typedef struct item
{
	item_kind kind;
	size_t pos;
	const char *s; /* I_ATTR */
	size_t len;
	double idx;		  /* I_ELEM */
	groq_node *x, *y; /* slice bounds, filter/bracket expression */
	bool exclusive;
} item;

/* How a (partial) traversal relates to arrays, as in the spec. */
typedef enum
{
	TR_PLAIN,		 /* b-b: works on and returns unknown types */
	TR_ARRAY,		 /* a-a */
	TR_ARRAY_SOURCE, /* a-b */
	TR_ARRAY_TARGET	 /* b-a */
} tr_type;

typedef struct builder builder;
struct builder
{
	enum
	{
		B_STEP,
		B_JOIN, /* y(x(base)) */
		B_MAP	/* map y over the elements of x(base) */
	} kind;
	bool flat;
	const item *it;
	builder *x, *y;
};

typedef struct traversal
{
	tr_type type;
	builder *build;
} traversal;

static builder *
mkb(parser *p, int kind, const item *it, builder *x, builder *y, bool flat)
{
	builder *b = groq_arena_alloc(&p->f->arena, sizeof(*b));

	if (!b)
		return fail(p, 0, "out of memory");
	b->kind = kind;
	b->it = it;
	b->x = x;
	b->y = y;
	b->flat = flat;
	return b;
}

static groq_node *
apply_item(parser *p, const item *it, groq_node *base)
{
	groq_node *n;

	switch (it->kind)
	{
		case I_IDENTITY:
			return base;
		case I_ATTR:
			n = mk(p, N_ATTR, it->pos, base, NULL, NULL);
			if (n)
			{
				n->u.str.s = it->s;
				n->u.str.len = it->len;
			}
			return n;
		case I_DEREF:
			return mk(p, N_DEREF, it->pos, base, NULL, NULL);
		case I_ELEM:
			n = mk(p, N_ELEM, it->pos, base, NULL, NULL);
			if (n)
				n->u.num = it->idx;
			return n;
		case I_SLICE:
			n = mk(p, N_SLICE, it->pos, base, it->x, it->y);
			if (n)
				n->flag = it->exclusive;
			return n;
		case I_FILTER:
			return mk(p, N_FILTER, it->pos, base, it->x, NULL);
		case I_BRACKET:
			return mk(p, N_BRACKET, it->pos, base, it->x, NULL);
		case I_COERCE:
			return mk(p, N_COERCE, it->pos, base, NULL, NULL);
	}
	return NULL;
}

/* base NULL stands for @ (the element inside a map). */
static groq_node *
build(parser *p, const builder *b, groq_node *base)
{
	groq_node *x, *y, *n;

	if (!b || p->failed)
		return NULL;
	switch (b->kind)
	{
		case B_STEP:
			return apply_item(p, b->it, base);
		case B_JOIN:
			x = build(p, b->x, base);
			if (!x && (b->x->kind != B_STEP || b->x->it->kind != I_IDENTITY))
				return NULL;
			return build(p, b->y, x);
		case B_MAP:
			x = build(p, b->x, base);
			y = build(p, b->y, NULL);
			if (!x || !y)
				return NULL;
			n = mk(p, b->flat ? N_FLATMAP : N_MAP, x->pos, x, y, NULL);
			return n;
	}
	return NULL;
}

static traversal
traverse(parser *p, const item *it, const traversal *rest)
{
	traversal r = {0};
	builder *step = mkb(p, B_STEP, it, NULL, NULL, false);
	tr_type own;

	switch (it->kind)
	{
		case I_ATTR:
		case I_DEREF:
			own = TR_PLAIN;
			break;
		case I_ELEM:
			own = TR_ARRAY_SOURCE;
			break;
		default:
			own = TR_ARRAY;
			break;
	}
	if (!rest)
	{
		r.type = own;
		r.build = step;
		return r;
	}
	if (own == TR_ARRAY &&
		(rest->type == TR_PLAIN || rest->type == TR_ARRAY_TARGET))
	{
		r.type = TR_ARRAY;
		r.build = mkb(p, B_MAP, NULL, step, rest->build,
					  rest->type == TR_ARRAY_TARGET);
		return r;
	}
	r.build = mkb(p, B_JOIN, NULL, step, rest->build, false);
	switch (own)
	{
		case TR_ARRAY:
			r.type = rest->type;
			break;
		case TR_PLAIN:
			r.type = (rest->type == TR_ARRAY || rest->type == TR_ARRAY_TARGET)
						 ? TR_ARRAY_TARGET
						 : TR_PLAIN;
			break;
		default:
			r.type = (rest->type == TR_ARRAY || rest->type == TR_ARRAY_TARGET)
						 ? TR_ARRAY
						 : TR_ARRAY_SOURCE;
			break;
	}
	return r;
}

static bool
integral(double d)
{
	return isfinite(d) && d == floor(d);
}

/*
 * Classifies `base[e]`: a range is a slice; a constant string an attribute
 * access; a constant number an element access; anything else a filter.
 */
static bool
bracket_item(parser *p, groq_node *e, size_t pos, item *it)
{
	bool uses_params = false;
	groq_arena tmp;
	groq_value v;
	bool ok = true;

	it->pos = pos;
	if (e->op == N_RANGE)
	{
		it->kind = I_SLICE;
		it->exclusive = e->flag;
		it->x = operand(p, e->a);
		it->y = operand(p, e->b);
		if (!it->x || !it->y)
			return false;
		if (!is_constant(e, &uses_params))
			return fail(p, e->pos, "slice bounds must be constant integers"),
				   false;
		if (uses_params)
			return true;
		groq_arena_init(&tmp, NULL, 0, 0);
		for (int k = 0; k < 2 && ok; k++)
		{
			ok = const_eval(p, k ? e->b : e->a, &v, &tmp);
			if (ok && (v.t != V_NUM || !integral(v.u.n)))
				ok = fail(p, (k ? e->b : e->a)->pos,
						  "slice bounds must be integers") != NULL;
		}
		groq_arena_free(&tmp);
		return ok;
	}
	if (!operand(p, e))
		return false;
	if (!is_constant(e, &uses_params))
	{
		it->kind = I_FILTER;
		it->x = e;
		return true;
	}
	if (uses_params)
	{
		it->kind = I_BRACKET;
		it->x = e;
		return true;
	}
	groq_arena_init(&tmp, NULL, 0, 0);
	ok = const_eval(p, e, &v, &tmp);
	if (ok && v.t == V_STR)
	{
		char *s = groq_arena_alloc(&p->f->arena, v.u.str.len + 1);

		if (!s)
			ok = fail(p, pos, "out of memory") != NULL;
		else
		{
			memcpy(s, v.u.str.s, v.u.str.len);
			s[v.u.str.len] = '\0';
			it->kind = I_ATTR;
			it->s = s;
			it->len = v.u.str.len;
		}
	}
	else if (ok && v.t == V_NUM)
	{
		if (!integral(v.u.n))
			ok = fail(p, e->pos, "array index must be an integer") != NULL;
		it->kind = I_ELEM;
		it->idx = v.u.n;
	}
	else if (ok)
	{
		it->kind = I_FILTER;
		it->x = e;
	}
	groq_arena_free(&tmp);
	return ok;
}

/* An atom followed by its traversals, folded into one expression. */
static groq_node *
parse_traversals(parser *p, groq_node *atom, bool array_base)
{
	item *items;
	size_t n = 0;
	traversal rest, *restp = NULL;
	groq_node *res;

	if (!atom)
		return NULL;
	if (peek(p)->t != T_DOT && peek(p)->t != T_LBRACKET &&
		peek(p)->t != T_DEREF && peek(p)->t != T_LBRACE)
		return atom;
	/* the chain is at most max_depth long, or the tree would be too tall */
	items = calloc(p->f->limits.max_depth + 2, sizeof(*items));
	if (!items)
		return fail(p, peek(p)->pos, "out of memory");
	/* *, array literals: as if followed by [] (spec: Traversal expression) */
	if (array_base)
		items[n++].kind = I_IDENTITY;
	for (;;)
	{
		const groq_token *t = peek(p);
		item *it = &items[n];

		if (t->t != T_DOT && t->t != T_LBRACKET && t->t != T_DEREF &&
			t->t != T_LBRACE)
			break;
		if (n + 2 >= p->f->limits.max_depth)
		{
			fail(p, t->pos, "query nested too deeply");
			goto err;
		}
		next(p);
		it->pos = t->pos;
		if (t->t == T_LBRACE)
		{
			fail(p, t->pos, "projections are not supported in a subscription");
			goto err;
		}
		if (t->t == T_DOT)
		{
			const groq_token *id = next(p);

			if (id->t != T_IDENT)
			{
				fail(p, id->pos, "expected an attribute name after '.'");
				goto err;
			}
			it->kind = I_ATTR;
			it->s = id->s;
			it->len = id->len;
		}
		else if (t->t == T_DEREF)
		{
			const groq_token *id = peek(p);

			it->kind = I_DEREF;
			/* ref->name is ref-> followed by .name */
			if (id->t == T_IDENT && !is_word(id, "in") &&
				!is_word(id, "match") && !is_word(id, "asc") &&
				!is_word(id, "desc"))
			{
				next(p);
				n++;
				it = &items[n];
				it->kind = I_ATTR;
				it->pos = id->pos;
				it->s = id->s;
				it->len = id->len;
			}
		}
		else if (peek(p)->t == T_RBRACKET)
		{
			next(p);
			it->kind = I_COERCE;
		}
		else
		{
			groq_node *e = parse_expr(p, 0);

			if (!e || !bracket_item(p, e, t->pos, it) ||
				!expect(p, T_RBRACKET, "']'"))
				goto err;
		}
		n++;
	}
	for (size_t k = n; k-- > 0;)
	{
		rest = traverse(p, &items[k], restp);
		if (p->failed)
			goto err;
		restp = &rest;
	}
	res = build(p, rest.build, atom);
	free(items);
	return res;

err:
	free(items);
	return NULL;
}

/* ---- expressions ---- */

static groq_node *
parse_call(parser *p, const groq_token *ns, const groq_token *name)
{
	const groq_fninfo *fi;
	groq_node *args[256];
	size_t nargs = 0;
	groq_node *n;
	bool seen_default = false;

	fi =
		groq_fn_lookup(ns ? ns->s : NULL, ns ? ns->len : 0, name->s, name->len);
	if (!fi)
	{
		char msg[120];

		snprintf(msg, sizeof(msg), "unknown function %.*s%s%.*s()",
				 ns ? (int) ns->len : 0, ns ? ns->s : "", ns ? "::" : "",
				 (int) (name->len > 40 ? 40 : name->len), name->s);
		return fail(p, (ns ? ns : name)->pos, msg);
	}
	next(p); /* ( */
	while (peek(p)->t != T_RPAREN)
	{
		groq_node *a;

		if (nargs == sizeof(args) / sizeof(args[0]))
			return fail(p, peek(p)->pos, "too many function arguments");
		a = parse_expr(p, 0);
		if (!a)
			return NULL;
		if (fi->fn == F_SELECT && a->op == N_PAIR)
		{
			if (seen_default)
				return fail(p, a->pos,
							"select(): the default must be the last argument");
		}
		else
		{
			if (fi->fn == F_SELECT && seen_default)
				return fail(p, a->pos,
							"select(): only one default argument is allowed");
			seen_default = true;
			if (!operand(p, a))
				return NULL;
		}
		args[nargs++] = a;
		if (peek(p)->t != T_COMMA)
			break;
		next(p);
	}
	if (!expect(p, T_RPAREN, "')' after function arguments"))
		return NULL;
	if ((int) nargs < fi->min_args ||
		(fi->max_args >= 0 && (int) nargs > fi->max_args))
	{
		char msg[120];

		if (fi->min_args == fi->max_args)
			snprintf(msg, sizeof(msg), "%s() takes %d argument%s", fi->name,
					 fi->min_args, fi->min_args == 1 ? "" : "s");
		else if (fi->max_args < 0)
			snprintf(msg, sizeof(msg), "%s() takes at least %d argument%s",
					 fi->name, fi->min_args, fi->min_args == 1 ? "" : "s");
		else
			snprintf(msg, sizeof(msg), "%s() takes %d to %d arguments",
					 fi->name, fi->min_args, fi->max_args);
		return fail(p, (ns ? ns : name)->pos, msg);
	}
	n = mk(p, N_CALL, (ns ? ns : name)->pos, NULL, NULL, NULL);
	if (!n || !set_args(p, n, args, nargs))
		return NULL;
	n->u.fn = fi->fn;
	return n;
}

static groq_node *
parse_array(parser *p, size_t pos)
{
	groq_node **elems = NULL;
	size_t n = 0, cap = 0;
	groq_node *res = NULL;

	while (peek(p)->t != T_RBRACKET)
	{
		const groq_token *t = peek(p);
		groq_node *e;

		if (t->t == T_DOTDOTDOT)
		{
			next(p);
			e = operand(p, parse_expr(p, 0));
			e = e ? mk(p, N_SPLAT, t->pos, e, NULL, NULL) : NULL;
		}
		else
			e = operand(p, parse_expr(p, 0));
		if (!e)
			goto out;
		if (n == cap)
		{
			groq_node **ne;

			cap = cap ? cap * 2 : 8;
			ne = realloc(elems, cap * sizeof(*elems));
			if (!ne)
			{
				fail(p, t->pos, "out of memory");
				goto out;
			}
			elems = ne;
		}
		elems[n++] = e;
		if (peek(p)->t != T_COMMA)
			break;
		next(p);
	}
	if (!expect(p, T_RBRACKET, "']' or ',' in array"))
		goto out;
	res = mk(p, N_ARRAY, pos, NULL, NULL, NULL);
	if (res && !set_args(p, res, elems, n))
		res = NULL;
out:
	free(elems);
	return res;
}

static groq_node *
parse_object(parser *p, size_t pos)
{
	groq_node **attrs = NULL;
	size_t n = 0, cap = 0;
	groq_node *res = NULL;

	while (peek(p)->t != T_RBRACE)
	{
		const groq_token *t = peek(p);
		groq_node *e;

		if (t->t == T_DOTDOTDOT)
		{
			next(p);
			e = NULL;
			if (peek(p)->t != T_COMMA && peek(p)->t != T_RBRACE)
			{
				e = operand(p, parse_expr(p, 0));
				if (!e)
					goto out;
			}
			e = mk(p, N_SPLAT, t->pos, e, NULL, NULL);
		}
		else if (t->t == T_STR && peek2(p)->t == T_COLON)
		{
			next(p);
			next(p);
			e = operand(p, parse_expr(p, 0));
			e = e ? mk(p, N_KV, t->pos, e, NULL, NULL) : NULL;
			if (e)
			{
				e->u.str.s = t->s;
				e->u.str.len = t->len;
			}
		}
		else if (t->t == T_IDENT &&
				 (peek2(p)->t == T_COMMA || peek2(p)->t == T_RBRACE))
		{
			/* {name} is {"name": name} */
			groq_node *v;

			next(p);
			v = mk(p, N_ATTR, t->pos, NULL, NULL, NULL);
			e = v ? mk(p, N_KV, t->pos, v, NULL, NULL) : NULL;
			if (e)
			{
				v->u.str.s = e->u.str.s = t->s;
				v->u.str.len = e->u.str.len = t->len;
			}
		}
		else
		{
			fail(p, t->pos,
				 "object attributes must be \"name\": value, name or ...");
			goto out;
		}
		if (!e)
			goto out;
		if (n == cap)
		{
			groq_node **ne;

			cap = cap ? cap * 2 : 8;
			ne = realloc(attrs, cap * sizeof(*attrs));
			if (!ne)
			{
				fail(p, t->pos, "out of memory");
				goto out;
			}
			attrs = ne;
		}
		attrs[n++] = e;
		if (peek(p)->t != T_COMMA)
			break;
		next(p);
	}
	if (!expect(p, T_RBRACE, "'}' or ',' in object"))
		goto out;
	res = mk(p, N_OBJECT, pos, NULL, NULL, NULL);
	if (res && !set_args(p, res, attrs, n))
		res = NULL;
out:
	free(attrs);
	return res;
}

static groq_node *
parse_atom(parser *p)
{
	const groq_token *t = peek(p);
	groq_node *n;

	switch (t->t)
	{
		case T_NUM:
			next(p);
			n = mk(p, N_NUM, t->pos, NULL, NULL, NULL);
			if (n)
				n->u.num = t->num;
			return parse_traversals(p, n, false);
		case T_STR:
			next(p);
			n = mk(p, N_STR, t->pos, NULL, NULL, NULL);
			if (n)
			{
				n->u.str.s = t->s;
				n->u.str.len = t->len;
			}
			return parse_traversals(p, n, false);
		case T_PARAM:
			next(p);
			n = mk(p, N_PARAM, t->pos, NULL, NULL, NULL);
			if (n)
			{
				n->u.str.s = t->s;
				n->u.str.len = t->len;
				note_param(p, t);
			}
			return parse_traversals(p, n, false);
		case T_AT:
			next(p);
			return parse_traversals(p, mk(p, N_THIS, t->pos, NULL, NULL, NULL),
									false);
		case T_STAR:
			return fail(p, t->pos,
						"subqueries (*) are not supported in a subscription");
		case T_CARET:
			return fail(p, t->pos,
						"the parent scope (^) is not supported in a "
						"subscription");
		case T_LPAREN:
			next(p);
			n = parse_expr(p, 0);
			if (!n || !expect(p, T_RPAREN, "')'"))
				return NULL;
			if (peek(p)->t == T_DOT || peek(p)->t == T_LBRACKET ||
				peek(p)->t == T_DEREF || peek(p)->t == T_LBRACE)
				n = operand(p, n);
			return parse_traversals(p, n, false);
		case T_LBRACKET:
			next(p);
			return parse_traversals(p, parse_array(p, t->pos), true);
		case T_LBRACE:
			next(p);
			return parse_traversals(p, parse_object(p, t->pos), false);
		case T_IDENT:
			if (is_word(t, "true") || is_word(t, "false") || is_word(t, "null"))
			{
				next(p);
				n = mk(p,
					   is_word(t, "true")	 ? N_TRUE
					   : is_word(t, "false") ? N_FALSE
											 : N_NULL,
					   t->pos, NULL, NULL, NULL);
				return parse_traversals(p, n, false);
			}
			if (peek2(p)->t == T_LPAREN)
			{
				next(p);
				return parse_traversals(p, parse_call(p, NULL, t), false);
			}
			if (peek2(p)->t == T_COLONCOLON)
			{
				const groq_token *name;

				next(p);
				next(p);
				name = next(p);
				if (name->t != T_IDENT || peek(p)->t != T_LPAREN)
					return fail(p, name->pos,
								"expected a function call after '::'");
				return parse_traversals(p, parse_call(p, t, name), false);
			}
			next(p);
			n = mk(p, N_ATTR, t->pos, NULL, NULL, NULL);
			if (n)
			{
				n->u.str.s = t->s;
				n->u.str.len = t->len;
			}
			return parse_traversals(p, n, false);
		case T_EOF:
			return fail(p, t->pos, "unexpected end of query");
		default:
			return fail(p, t->pos, "unexpected token");
	}
}

typedef struct binop
{
	groq_op op;
	int bp;
	enum
	{
		A_LEFT,
		A_RIGHT,
		A_NONE
	} assoc;
} binop;

static bool
binop_of(parser *p, const groq_token *t, binop *b)
{
	switch (t->t)
	{
		case T_ARROW:
			*b = (binop){N_PAIR, 1, A_NONE};
			return true;
		case T_OR:
			*b = (binop){N_OR, 2, A_LEFT};
			return true;
		case T_AND:
			*b = (binop){N_AND, 3, A_LEFT};
			return true;
		case T_EQ:
			*b = (binop){N_EQ, 4, A_NONE};
			return true;
		case T_NE:
			*b = (binop){N_NE, 4, A_NONE};
			return true;
		case T_LT:
			*b = (binop){N_LT, 4, A_NONE};
			return true;
		case T_LE:
			*b = (binop){N_LE, 4, A_NONE};
			return true;
		case T_GT:
			*b = (binop){N_GT, 4, A_NONE};
			return true;
		case T_GE:
			*b = (binop){N_GE, 4, A_NONE};
			return true;
		case T_DOTDOT:
		case T_DOTDOTDOT:
			*b = (binop){N_RANGE, 5, A_NONE};
			return true;
		case T_PLUS:
			*b = (binop){N_ADD, 6, A_LEFT};
			return true;
		case T_MINUS:
			*b = (binop){N_SUB, 6, A_LEFT};
			return true;
		case T_STAR:
			*b = (binop){N_MUL, 7, A_LEFT};
			return true;
		case T_SLASH:
			*b = (binop){N_DIV, 7, A_LEFT};
			return true;
		case T_PERCENT:
			*b = (binop){N_MOD, 7, A_LEFT};
			return true;
		case T_STARSTAR:
			*b = (binop){N_POW, 9, A_RIGHT};
			return true;
		case T_PIPE:
			fail(p, t->pos, "pipes (|) are not supported in a subscription");
			return false;
		case T_IDENT:
			if (is_word(t, "in"))
			{
				*b = (binop){N_IN, 4, A_NONE};
				return true;
			}
			if (is_word(t, "match"))
			{
				*b = (binop){N_MATCH, 4, A_NONE};
				return true;
			}
			if (is_word(t, "asc") || is_word(t, "desc"))
				fail(p, t->pos, "ordering is not supported in a subscription");
			return false;
		default:
			return false;
	}
}

static groq_node *
parse_prefix(parser *p)
{
	const groq_token *t = peek(p);
	groq_node *a;

	switch (t->t)
	{
		case T_NOT:
		case T_PLUS:
			next(p);
			a = operand(p, parse_expr(p, 11));
			return a ? mk(p, t->t == T_NOT ? N_NOT : N_POS, t->pos, a, NULL,
						  NULL)
					 : NULL;
		case T_MINUS:
			next(p);
			a = operand(p, parse_expr(p, 9));
			return a ? mk(p, N_NEG, t->pos, a, NULL, NULL) : NULL;
		default:
			return parse_atom(p);
	}
}

static groq_node *
parse_expr(parser *p, int minbp)
{
	groq_node *left;

	if (++p->depth > p->f->limits.max_depth)
		return fail(p, peek(p)->pos, "query nested too deeply");
	left = parse_prefix(p);
	while (left)
	{
		const groq_token *t = peek(p);
		binop b, b2;
		groq_node *right;

		if (!binop_of(p, t, &b))
		{
			if (p->failed)
				left = NULL;
			break;
		}
		if (b.bp < minbp)
			break;
		next(p);
		right = parse_expr(p, b.assoc == A_RIGHT ? b.bp : b.bp + 1);
		if (!right)
		{
			left = NULL;
			break;
		}
		if (b.op == N_PAIR || b.op == N_RANGE)
		{
			if (!operand(p, left) || !operand(p, right))
			{
				left = NULL;
				break;
			}
		}
		else if (!operand(p, left) ||
				 ((b.op != N_IN || right->op != N_RANGE) && !operand(p, right)))
		{
			left = NULL;
			break;
		}
		left = mk(p, b.op, t->pos, left, right, NULL);
		if (left && b.op == N_RANGE)
			left->flag = t->t == T_DOTDOTDOT;
		if (left && b.assoc == A_NONE && binop_of(p, peek(p), &b2) &&
			b2.bp == b.bp)
			left = fail(p, peek(p)->pos,
						"operator is not associative; add parentheses");
	}
	p->depth--;
	return left;
}

/* ---- the whole query ---- */

static bool
is_this_attr(const groq_node *n, const char *name)
{
	return n->op == N_ATTR && (!n->a || n->a->op == N_THIS) &&
		   n->u.str.len == strlen(name) &&
		   !memcmp(n->u.str.s, name, n->u.str.len);
}

static const char *
find_type_key(const groq_node *n)
{
	const char *k;

	if (n->op == N_AND)
	{
		k = find_type_key(n->a);
		return k ? k : find_type_key(n->b);
	}
	if (n->op != N_EQ)
		return NULL;
	/* strings from the lexer and folded constants are NUL-terminated */
	if (is_this_attr(n->a, "_type") && n->b->op == N_STR &&
		!memchr(n->b->u.str.s, '\0', n->b->u.str.len))
		return n->b->u.str.s;
	if (is_this_attr(n->b, "_type") && n->a->op == N_STR &&
		!memchr(n->a->u.str.s, '\0', n->a->u.str.len))
		return n->a->u.str.s;
	return NULL;
}

/* A copy of s[0..len) with a NUL, in the filter's arena. */
static const char *
arena_strndup(groq_arena *a, const char *s, size_t len)
{
	char *d = groq_arena_alloc(a, len + 1);

	if (d)
	{
		memcpy(d, s, len);
		d[len] = '\0';
	}
	return d;
}

/* attr is a plain top-level attribute other than _type, without NULs. */
static bool
is_key_attr(const groq_node *n)
{
	return n->op == N_ATTR && (!n->a || n->a->op == N_THIS) &&
		   !is_this_attr(n, "_type") && !memchr(n->u.str.s, '\0', n->u.str.len);
}

static bool
is_key_value(const groq_node *n)
{
	if (n->op == N_STR || n->op == N_PARAM)
		return !memchr(n->u.str.s, '\0', n->u.str.len);
	return n->op == N_NUM || n->op == N_TRUE || n->op == N_FALSE;
}

/* groq_eq_key_text() of a literal, in the filter's arena. */
static const char *
literal_key(groq_arena *a, const groq_node *n)
{
	char num[40];
	const char *body;
	size_t len;
	char tag;
	char *key;

	switch (n->op)
	{
		case N_STR:
			tag = 's', body = n->u.str.s, len = n->u.str.len;
			break;
		case N_NUM:
			tag = 'n', body = num;
			len = groq_eq_key_number(n->u.num, num, sizeof(num));
			break;
		default:
			tag = 'b', body = n->op == N_TRUE ? "1" : "0", len = 1;
			break;
	}
	key = groq_arena_alloc(a, len + 2);
	if (key)
		groq_eq_key_format(tag, body, len, key, len + 2);
	return key;
}

/*
 * The first conjunct ATTR == V / ATTR == $P of the && chain at n (see
 * groq_filter_eq_key()).  False when none, or when out of memory (the
 * filter then simply has no key).
 */
static bool
find_eq_key(groq_filter *f, const groq_node *n)
{
	const groq_node *attr, *value;

	if (n->op == N_AND)
		return find_eq_key(f, n->a) || find_eq_key(f, n->b);
	if (n->op != N_EQ)
		return false;
	if (is_key_attr(n->a) && is_key_value(n->b))
		attr = n->a, value = n->b;
	else if (is_key_attr(n->b) && is_key_value(n->a))
		attr = n->b, value = n->a;
	else
		return false;
	f->eq_attr = arena_strndup(&f->arena, attr->u.str.s, attr->u.str.len);
	if (value->op == N_PARAM)
		f->eq_param =
			arena_strndup(&f->arena, value->u.str.s, value->u.str.len);
	else
		f->eq_key = literal_key(&f->arena, value);
	if (!f->eq_attr || !(f->eq_key || f->eq_param))
	{
		f->eq_attr = f->eq_key = f->eq_param = NULL;
		return false;
	}
	return true;
}

static bool
parse_query(parser *p)
{
	const groq_token *t = peek(p);
	groq_node *e;
	item it = {0};
	bool uses_params = false;

	if (t->t != T_STAR || peek2(p)->t != T_LBRACKET)
		return fail(p, t->pos,
					"a subscription query must have the form *[FILTER]"),
			   false;
	next(p);
	t = next(p);
	if (peek(p)->t == T_RBRACKET)
		return fail(p, peek(p)->pos, "empty filter"), false;
	e = parse_expr(p, 0);
	if (!e)
		return false;
	if (e->op == N_RANGE)
		return fail(p, e->pos, "slicing * is not supported in a subscription"),
			   false;
	if (!operand(p, e))
		return false;
	if (is_constant(e, &uses_params) && !uses_params)
	{
		if (!bracket_item(p, e, t->pos, &it))
			return false;
		if (it.kind == I_ATTR)
			return fail(p, e->pos,
						"*[\"name\"] is an attribute access, not a filter"),
				   false;
		if (it.kind == I_ELEM)
			return fail(p, e->pos,
						"*[N] (element access) is not supported in a "
						"subscription"),
				   false;
	}
	if (!expect(p, T_RBRACKET, "']' closing the filter"))
		return false;
	t = peek(p);
	switch (t->t)
	{
		case T_EOF:
			break;
		case T_PIPE:
			return fail(p, t->pos,
						"pipes (|) are not supported in a subscription"),
				   false;
		case T_LBRACE:
			return fail(p, t->pos,
						"projections are not supported in a subscription"),
				   false;
		case T_LBRACKET:
			return fail(p, t->pos,
						"a subscription takes exactly one filter: *[FILTER]"),
				   false;
		default:
			return fail(p, t->pos,
						"unexpected text after the filter; a subscription is "
						"*[FILTER]"),
				   false;
	}
	p->f->root = e;
	return true;
}

bool
groq_parse(groq_filter *f, const char *text, size_t len, groq_error *err)
{
	parser p = {0};
	groq_token *toks;
	bool ok = false;

	p.f = f;
	p.err = err;
	toks = groq_lex(text, len, &f->arena, err);
	if (!toks)
		return false;
	p.toks = toks;
	p.params = calloc(len + 1, sizeof(*p.params));
	if (!p.params)
	{
		groq_seterr(err, 0, "out of memory");
		goto out;
	}
	if (!parse_query(&p))
		goto out;
	f->type_key = find_type_key(f->root);
	find_eq_key(f, f->root);
	f->nparams = p.nparams;
	f->param_names =
		groq_arena_alloc(&f->arena, sizeof(char *) * (p.nparams + 1));
	f->param_pos =
		groq_arena_alloc(&f->arena, sizeof(uint32_t) * (p.nparams + 1));
	if (!f->param_names || !f->param_pos)
	{
		groq_seterr(err, 0, "out of memory");
		goto out;
	}
	for (size_t k = 0; k < p.nparams; k++)
	{
		char *s = groq_arena_alloc(&f->arena, p.params[k]->len + 1);

		if (!s)
		{
			groq_seterr(err, 0, "out of memory");
			goto out;
		}
		memcpy(s, p.params[k]->s, p.params[k]->len);
		s[p.params[k]->len] = '\0';
		f->param_names[k] = s;
		f->param_pos[k] = p.params[k]->pos;
	}
	ok = true;
out:
	free(p.params);
	free(toks);
	return ok;
}
