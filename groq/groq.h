/*
 * groq.h: GROQ subscription filters, compiled once and evaluated against one
 * document at a time.
 *
 * A subscription query has the form `*[FILTER]`.  groq_compile() turns its
 * text into an immutable, refcounted groq_filter that any number of
 * subscriptions (and threads) may share; groq_match() evaluates it against
 * one jansson document plus the subscription's $params.  A document matches
 * only when the filter yields exactly `true` (GROQ's three-valued logic:
 * null is not a match).
 *
 * What cannot be decided from one document is refused at compile time:
 * subqueries `*[...]`, the parent scope `^`, projections, pipes, ordering
 * and slicing of `*`.  A dereference `ref->` parses but always yields null
 * (a reference whose target is unknown), because the relay sees only the
 * changed document.
 *
 * The module does no I/O and keeps no global state.
 */
#ifndef GROQ_H
#define GROQ_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/*
 * Every bound on work a hostile query or document can cause.  A zero field
 * means "use the default" (see groq_limits_default()).
 */
typedef struct groq_limits
{
	size_t max_query_len;	 /* bytes of query text (default 16 KiB) */
	unsigned max_depth;		 /* nesting of the syntax tree (default 128) */
	unsigned long max_steps; /* evaluation steps per match (default 100000) */
	size_t max_params_size;	 /* JSON values + string bytes of $params
								(default 64 KiB) */
	size_t max_eval_memory;	 /* scratch bytes per match (default 8 MiB) */
	unsigned max_doc_depth;	 /* document nesting scanned by references()
								(default 512) */
} groq_limits;

/* Where and why a query was refused or an evaluation aborted. */
typedef struct groq_error
{
	size_t pos;		   /* byte offset into the query text */
	char message[200]; /* short, suitable for a client error message */
} groq_error;

typedef struct groq_filter groq_filter;

/* The defaults, for callers that want to change one field. */
groq_limits groq_limits_default(void);

/*
 * Compiles `*[FILTER]` (text need not be NUL-terminated).  limits may be
 * NULL for the defaults; they are copied into the filter.  Returns a filter
 * with one reference owned by the caller, or NULL with err set (err may be
 * NULL).
 */
groq_filter *groq_compile(const char *text, size_t len,
						  const groq_limits *limits, groq_error *err);

/* Adds a reference; returns f. */
groq_filter *groq_filter_ref(groq_filter *f);

/* Drops a reference; the last one frees the filter.  NULL is a no-op. */
void groq_filter_unref(groq_filter *f);

/*
 * True when params (a JSON object, or NULL meaning {}) defines every $name
 * the filter uses and stays within the filter's max_params_size; otherwise
 * false with err set.  Call it once at subscribe time.
 */
bool groq_params_check(const groq_filter *f, json_t *params, groq_error *err);

/*
 * Evaluates the filter against doc with params (borrowed; NULL means {}).
 * limits NULL means the filter's own.  Returns 1 when the filter yields
 * true, 0 otherwise, -1 when evaluation was aborted (step, memory or depth
 * limit, or a $param missing from params) with err set.  Allocates only
 * scratch memory freed before it returns.
 */
int groq_match(const groq_filter *f, json_t *doc, json_t *params,
			   const groq_limits *limits, groq_error *err);

/*
 * groq_match() that also stores in *steps_used the evaluation steps it took
 * (at most the max_steps in effect; all of them when it aborted on the step
 * limit), so a caller can bound the work of many matches together.
 */
int groq_match_counted(const groq_filter *f, json_t *doc, json_t *params,
					   const groq_limits *limits, unsigned long *steps_used,
					   groq_error *err);

/*
 * True when every attribute the filter reads from the document's top level
 * is one of attrs[0..n) and the filter never uses the document as a whole
 * (`@` at the top level, references(), ...).  The relay uses it to decide
 * whether a payload with only those attributes suffices.
 */
bool groq_filter_reads_only(const groq_filter *f, const char *const *attrs,
							size_t n);

/*
 * The literal T when the filter is `_type == "T"` (either operand order) or
 * a top-level && chain with such a conjunct, i.e. when no document of
 * another type can match; NULL otherwise.  Owned by the filter.
 */
const char *groq_filter_type_key(const groq_filter *f);

/*
 * A conjunct `ATTR == V` or `ATTR == $P` of the filter's top-level &&
 * chain (either operand order), ATTR a top-level attribute other than
 * _type and V a string, number or boolean literal: the first such.  No
 * document can match unless its ATTR equals V (or the value of $P), so the
 * relay can index subscriptions by it (`_id == $id` being the usual case).
 * Returns false when there is none; otherwise *attr and exactly one of *key
 * (V's equality key text, see groq_eq_key_text()) and *param (the
 * parameter's name without `$`) are set, the other NULL; all owned by the
 * filter.
 */
bool groq_filter_eq_key(const groq_filter *f, const char **attr,
						const char **key, const char **param);

/*
 * The equality key text of a JSON string, number or boolean: two such
 * values are equal in GROQ exactly when their key texts are equal (numbers
 * by value: 3 and 3.0 share a key).  Writes it NUL-terminated into buf
 * when it fits in cap bytes and returns its length (without the NUL), like
 * snprintf: a result >= cap means "call again with a larger buffer".
 * Returns 0 for any other value (null, arrays, objects): such a value
 * equals no key.
 */
size_t groq_eq_key_text(json_t *v, char *buf, size_t cap);

/* groq_eq_key_text() of the string s[0..len), without building a json_t. */
size_t groq_eq_key_string(const char *s, size_t len, char *buf, size_t cap);

/* The query text the filter was compiled from (NUL-terminated copy). */
const char *groq_filter_text(const groq_filter *f);

#endif
