/*
 * tstr: one allocation for a struct and the strings it owns.
 *
 * Records keyed by strings (dataset names, document and user ids, query
 * texts) keep their strings right after themselves, in a flexible array
 * member: one malloc, one free, and the key is next to the record that a
 * lookup has just touched.
 *
 *   typedef struct rec { hnode hn; const char *name; char id[]; } rec;
 *
 *   rec *r = TSTR_NEW(rec, id, "doc-1");
 *
 *   char *copies[2];
 *   rec *r = TSTR_ALLOC(rec, id, copies, tstr_of(id), tstr_of(name));
 *   r->name = copies[1];                      (copies[0] == r->id)
 *
 * Free the result with free().
 */
#ifndef RELAY_TSTR_H
#define RELAY_TSTR_H

#include <stddef.h>
#include <string.h>

/* len bytes at ptr, which need not be NUL-terminated. */
typedef struct tstr
{
	const char *ptr;
	size_t len;
} tstr;

static inline tstr
tstr_of(const char *str)
{
	return (tstr){str, strlen(str)};
}

/*
 * A zeroed block of at least `size` bytes holding, from offset `off`,
 * strs[0..n) one after the other, each copied and NUL-terminated.  When
 * copies is not NULL, copies[i] gets the address of copy i.  NULL when out
 * of memory.
 */
void *tstr_alloc(size_t size, size_t off, const tstr *strs, size_t n,
				 char **copies);

/* A zeroed `type` whose char array `member` starts the copies of the
 * tstr arguments. */
#define TSTR_ALLOC(type, member, copies, ...)                                  \
	((type *) tstr_alloc(                                                      \
		sizeof(type), offsetof(type, member), (const tstr[]){__VA_ARGS__},     \
		sizeof((const tstr[]){__VA_ARGS__}) / sizeof(tstr), (copies)))

/* A zeroed `type` whose char array `member` holds a copy of str. */
#define TSTR_NEW(type, member, str) TSTR_ALLOC(type, member, NULL, tstr_of(str))

#endif
