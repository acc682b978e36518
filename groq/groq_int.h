/*
 * groq_int.h: what the GROQ modules (lexer, parser, evaluator, functions,
 * text helpers) share.  Not for users of groq.h.
 */
#ifndef GROQ_INT_H
#define GROQ_INT_H

#include "groq.h"

#include <stdarg.h>
#include <stdint.h>

/* ---- arena: bump allocation, freed all at once ---- */

typedef struct groq_arena_block groq_arena_block;

typedef struct groq_arena
{
	char *cur;				/* next free byte */
	size_t left;			/* bytes left at cur */
	groq_arena_block *heap; /* malloc'd blocks, newest first */
	size_t used;			/* bytes handed out, for the limit */
	size_t limit;			/* 0 = unlimited */
} groq_arena;

/* Starts an arena on buf (may be NULL/0); nothing is allocated yet. */
void groq_arena_init(groq_arena *a, void *buf, size_t size, size_t limit);
/* NULL when out of memory or over the limit. */
void *groq_arena_alloc(groq_arena *a, size_t size);
/* Frees every block; the arena may be initialised again. */
void groq_arena_free(groq_arena *a);

/* ---- syntax tree ---- */

typedef enum groq_op
{
	N_NULL,
	N_TRUE,
	N_FALSE,
	N_NUM,
	N_STR,
	N_PARAM,   /* u.str = name, u.param = index */
	N_THIS,	   /* @ */
	N_ATTR,	   /* a.<u.str>; a NULL means @ */
	N_ELEM,	   /* a[u.num] */
	N_SLICE,   /* a[b..c], flag = exclusive */
	N_FILTER,  /* a[b] */
	N_BRACKET, /* a[b] decided at run time: b uses $params only */
	N_COERCE,  /* a[] */
	N_MAP,	   /* b evaluated with @ = each element of a */
	N_FLATMAP, /* same, array results concatenated */
	N_DEREF,   /* a-> (yields null: no other documents here) */
	N_ARRAY,   /* args; an N_SPLAT arg is flattened */
	N_OBJECT,  /* args are N_KV or N_SPLAT */
	N_KV,	   /* "<u.str>": a */
	N_SPLAT,   /* ...a (a NULL means ...@) */
	N_AND,
	N_OR,
	N_NOT,
	N_EQ,
	N_NE,
	N_LT,
	N_LE,
	N_GT,
	N_GE,
	N_IN,
	N_MATCH,
	N_RANGE, /* a..b or a...b (flag); only after `in` and in slices */
	N_PAIR,	 /* a => b; only as a select() argument */
	N_ADD,
	N_SUB,
	N_MUL,
	N_DIV,
	N_MOD,
	N_POW,
	N_NEG,
	N_POS,
	N_CALL /* u.fn, args */
} groq_op;

typedef enum groq_fn
{
	F_COALESCE,
	F_COUNT,
	F_DATETIME,
	F_DEFINED,
	F_LENGTH,
	F_LOWER,
	F_UPPER,
	F_PATH,
	F_REFERENCES,
	F_ROUND,
	F_SELECT,
	F_STRING,
	F_ARRAY_COMPACT,
	F_ARRAY_INTERSECTS,
	F_ARRAY_JOIN,
	F_ARRAY_UNIQUE,
	F_MATH_AVG,
	F_MATH_MAX,
	F_MATH_MIN,
	F_MATH_SUM,
	F_STRING_SPLIT,
	F_STRING_STARTSWITH
} groq_fn;

typedef struct groq_node groq_node;
struct groq_node
{
	uint8_t op;
	uint8_t flag;
	uint16_t height; /* 1 + the tallest child: bounds every recursion */
	uint32_t pos;	 /* byte offset in the query */
	uint32_t nargs;
	groq_node *a, *b, *c;
	groq_node **args;
	union
	{
		double num;
		struct
		{
			const char *s;
			size_t len;
		} str;
		int fn;
	} u;
};

struct groq_filter
{
	int refs;
	groq_limits limits;
	groq_node *root; /* the FILTER of *[FILTER] */
	char *text;
	const char *type_key;
	const char *eq_attr; /* groq_filter_eq_key(); NULL when none */
	const char *eq_key;
	const char *eq_param;
	size_t nparams;
	const char **param_names; /* NUL-terminated, distinct */
	uint32_t *param_pos;	  /* where each is first used */
	groq_arena arena;		  /* owns nodes, strings and the above */
};

/* Fills the defaults into zero fields. */
void groq_limits_resolve(groq_limits *out, const groq_limits *in);

void groq_seterr(groq_error *err, size_t pos, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- lexer ---- */

typedef enum groq_tok
{
	T_EOF,
	T_IDENT,
	T_NUM,
	T_STR,
	T_PARAM,
	T_LBRACKET,
	T_RBRACKET,
	T_LPAREN,
	T_RPAREN,
	T_LBRACE,
	T_RBRACE,
	T_COMMA,
	T_DOT,
	T_DOTDOT,
	T_DOTDOTDOT,
	T_COLON,
	T_COLONCOLON,
	T_ARROW, /* => */
	T_DEREF, /* -> */
	T_EQ,
	T_NE,
	T_NOT,
	T_LT,
	T_LE,
	T_GT,
	T_GE,
	T_AND,
	T_OR,
	T_PLUS,
	T_MINUS,
	T_STAR,
	T_STARSTAR,
	T_SLASH,
	T_PERCENT,
	T_AT,
	T_CARET,
	T_PIPE
} groq_tok;

typedef struct groq_token
{
	groq_tok t;
	uint32_t pos;
	const char *s; /* identifier/param name, or decoded string */
	size_t len;
	double num;
} groq_token;

/*
 * Splits text into tokens ending with T_EOF; decoded strings live in
 * arena.  Returns a malloc'd array (caller frees) or NULL with err set.
 */
groq_token *groq_lex(const char *text, size_t len, groq_arena *arena,
					 groq_error *err);

/* ---- parser ---- */

/* Fills f->root, f->type_key, f->eq_*, f->param_names; false with err
 * set. */
bool groq_parse(groq_filter *f, const char *text, size_t len, groq_error *err);

/* ---- values ---- */

typedef enum groq_type
{
	V_NULL,
	V_BOOL,
	V_NUM,
	V_STR,
	V_ARR,		/* u.arr in scratch memory */
	V_JARR,		/* u.j, a borrowed jansson array */
	V_OBJ,		/* u.obj in scratch memory */
	V_JOBJ,		/* u.j, a borrowed jansson object */
	V_DATETIME, /* u.dt */
	V_PATH		/* u.str, a glob like drafts.** */
} groq_type;

typedef struct groq_value groq_value;
typedef struct groq_kv groq_kv;

struct groq_value
{
	uint8_t t;
	bool b;
	union
	{
		double n;
		struct
		{
			const char *s;
			size_t len;
		} str;
		json_t *j;
		struct
		{
			groq_value *v;
			size_t n;
		} arr;
		struct
		{
			groq_kv *kv; /* the last of equal keys wins */
			size_t n;
		} obj;
		struct
		{
			int64_t sec;
			int32_t nsec;
		} dt;
	} u;
};

struct groq_kv
{
	const char *k;
	size_t klen;
	groq_value v;
};

typedef struct groq_eval
{
	const groq_filter *f;
	json_t *params;
	groq_arena *arena;
	unsigned long steps_left;
	unsigned max_doc_depth;
	groq_error *err;
} groq_eval;

/* Evaluates n with @ = *self into *out; -1 when aborted (err set). */
int groq_eval_node(groq_eval *ev, const groq_node *n, const groq_value *self,
				   groq_value *out);
int groq_eval_abort(groq_eval *ev, const groq_node *n, const char *what);
/* Aborts on the step limit; the steps left are spent (groq_match_counted). */
int groq_eval_out_of_steps(groq_eval *ev, const groq_node *n);
void groq_value_from_json(json_t *j, groq_value *out);
bool groq_is_array(const groq_value *v);
bool groq_is_object(const groq_value *v);
size_t groq_array_len(const groq_value *v);
void groq_array_at(const groq_value *v, size_t i, groq_value *out);
/* groq_eq_key_text() of a value given as a tag ('s', 'n', 'b') and its
 * text. */
size_t groq_eq_key_format(char tag, const char *body, size_t len, char *buf,
						  size_t cap);
/* The key text body of a number: equal numbers, equal texts. */
size_t groq_eq_key_number(double d, char *buf, size_t cap);

/* Equal() of the spec. */
bool groq_equal(const groq_value *a, const groq_value *b);
/* Some element of the array arr is Equal() to x. */
bool groq_array_contains(const groq_value *arr, const groq_value *x);
/* PartialCompare(): -1, 0, 1, or 2 when incomparable. */
int groq_compare(const groq_value *a, const groq_value *b);
/* Binary arithmetic on already evaluated operands. */
int groq_arith(groq_eval *ev, const groq_node *n, int op, const groq_value *l,
			   const groq_value *r, groq_value *out);

/* ---- functions ---- */

typedef struct groq_fninfo
{
	const char *name; /* without the global:: prefix */
	groq_fn fn;
	int min_args, max_args; /* max -1: any */
} groq_fninfo;

const groq_fninfo *groq_fn_lookup(const char *ns, size_t nslen,
								  const char *name, size_t len);
int groq_call(groq_eval *ev, const groq_node *n, const groq_value *self,
			  groq_value *out);

/* ---- text: UTF-8, match, path, numbers, datetimes ---- */

/* Offset of the first invalid UTF-8 byte, or len when all is valid. */
size_t groq_utf8_check(const char *s, size_t len);
/* Decodes one code point at s (valid UTF-8); returns its byte length. */
size_t groq_utf8_decode(const char *s, uint32_t *cp);
size_t groq_utf8_encode(uint32_t cp, char *out);
uint32_t groq_lower_cp(uint32_t cp);
uint32_t groq_upper_cp(uint32_t cp);
/* Case-maps s into arena memory; NULL when out of memory. */
char *groq_case_map(groq_arena *a, const char *s, size_t len, bool upper,
					size_t *outlen);

/* `text match pattern` over already collected strings (see groq_text.c). */
typedef struct groq_strref
{
	const char *s;
	size_t len;
} groq_strref;
int groq_text_match(groq_eval *ev, const groq_node *n, const groq_strref *texts,
					size_t ntexts, const groq_strref *patterns,
					size_t npatterns);

bool groq_path_match(const char *pat, size_t plen, const char *s, size_t slen);

/* JavaScript's Number#toString; buf of at least 32 bytes; returns length. */
size_t groq_format_number(double d, char *buf);
bool groq_parse_datetime(const char *s, size_t len, int64_t *sec,
						 int32_t *nsec);
/* RFC 3339 with Z; buf of at least 40 bytes; returns length. */
size_t groq_format_datetime(int64_t sec, int32_t nsec, char *buf);

#endif
